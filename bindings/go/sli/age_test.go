package sli

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

func ageEncrypt(t testing.TB, data []byte, rs []*Recipient, opts *AgeOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := Encrypt(&buf, rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func ageDecrypt(blob []byte, ids []*Identity, opts *AgeOptions) ([]byte, error) {
	r, err := Decrypt(bytes.NewReader(blob), ids, opts)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func newIdentityPair(t testing.TB) (*Identity, *Recipient) {
	t.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	r, err := id.Recipient()
	if err != nil {
		t.Fatal(err)
	}
	return id, r
}

func TestAgeRoundTrip(t *testing.T) {
	id, r := newIdentityPair(t)
	for _, n := range []int{0, 1, 65536, 65537, 300000, 3 << 20} {
		for _, opts := range []*AgeOptions{nil, {Armor: true}, {Parallel: true}, {AllOrNothing: true}} {
			data := random(t, n)
			got, err := ageDecrypt(ageEncrypt(t, data, []*Recipient{r}, opts), []*Identity{id}, opts)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%d bytes %+v: %v", n, opts, err)
			}
		}
	}
	if !strings.HasPrefix(r.String(), "age1") {
		t.Fatalf("recipient %q", r)
	}
	s, err := id.Encode()
	if err != nil || !strings.HasPrefix(s, "AGE-SECRET-KEY-1") {
		t.Fatalf("identity %q %v", s, err)
	}
	again, err := ParseIdentity(s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ageDecrypt(ageEncrypt(t, []byte("x"), []*Recipient{r}, nil), []*Identity{again}, nil); err != nil || string(got) != "x" {
		t.Fatalf("parsed identity: %v", err)
	}
	pr, err := ParseRecipient(r.String())
	if err != nil || pr.String() != r.String() {
		t.Fatalf("parsed recipient: %v", err)
	}
	// small writes, one byte at a time for a while, then big ones
	data := random(t, 200000)
	var buf bytes.Buffer
	w, _ := Encrypt(&buf, []*Recipient{r}, nil)
	for i := 0; i < 1000; i++ {
		w.Write(data[i : i+1])
	}
	w.Write(data[1000:])
	w.Close()
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	rd, _ := Decrypt(bytes.NewReader(buf.Bytes()), []*Identity{id}, nil)
	var got []byte
	one := make([]byte, 1)
	for len(got) < 1000 {
		n, err := rd.Read(one)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, one[:n]...)
	}
	rest, err := io.ReadAll(rd)
	if err != nil || !bytes.Equal(append(got, rest...), data) {
		t.Fatalf("byte-wise read: %v", err)
	}
	if n, err := rd.Read(one); n != 0 || err != io.EOF {
		t.Fatalf("read after the end: %d %v", n, err)
	}
}

func TestAgeToolAndCLIAgree(t *testing.T) {
	age := tool(t, "age")
	sli := cli(t)
	d := t.TempDir()
	id, r := newIdentityPair(t)
	s, _ := id.Encode()
	keyFile := filepath.Join(d, "key.txt")
	os.WriteFile(keyFile, []byte(s+"\n"), 0o600)
	data := random(t, 3*65536+17)
	for _, armor := range []bool{false, true} {
		f, _ := os.Create(filepath.Join(d, "p.age"))
		w, err := Encrypt(f, []*Recipient{r}, &AgeOptions{Armor: armor})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(data); i += 10000 {
			end := i + 10000
			if end > len(data) {
				end = len(data)
			}
			w.Write(data[i:end])
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if out := run(t, nil, age, "-d", "-i", keyFile, filepath.Join(d, "p.age")); !bytes.Equal(out, data) {
			t.Fatalf("age -d (armor %v) gave %d bytes", armor, len(out))
		}
		if out := run(t, nil, sli, "decrypt", "-i", keyFile, filepath.Join(d, "p.age")); !bytes.Equal(out, data) {
			t.Fatalf("sli decrypt (armor %v) gave %d bytes", armor, len(out))
		}
	}
	for _, args := range [][]string{{age, "-r", r.String()}, {age, "-a", "-r", r.String()},
		{sli, "encrypt", "-r", r.String()}} {
		made := run(t, data, args[0], args[1:]...)
		got, err := ageDecrypt(made, []*Identity{id}, nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%v: %v", args, err)
		}
	}
	// a passphrase file from the CLI
	pw := filepath.Join(d, "pw")
	os.WriteFile(pw, []byte("correct horse\n"), 0o600)
	cmd := run
	_ = cmd
	made := runEnv(t, data[:1000], []string{"SLI_PASSPHRASE_FILE=" + pw}, sli, "encrypt", "-p")
	pid, _ := PassphraseIdentity([]byte("correct horse"))
	if got, err := ageDecrypt(made, []*Identity{pid}, nil); err != nil || !bytes.Equal(got, data[:1000]) {
		t.Fatalf("sli encrypt -p: %v", err)
	}
	prc, _ := PassphraseRecipient([]byte("correct horse"), 10)
	mine := ageEncrypt(t, data[:1000], []*Recipient{prc}, nil)
	os.WriteFile(filepath.Join(d, "pw.age"), mine, 0o600)
	out := runEnv(t, nil, []string{"SLI_PASSPHRASE_FILE=" + pw}, sli, "decrypt", filepath.Join(d, "pw.age"))
	if !bytes.Equal(out, data[:1000]) {
		t.Fatal("sli decrypt of a Go passphrase file")
	}
}

func TestAgeRefusals(t *testing.T) {
	id, r := newIdentityPair(t)
	data := random(t, 200000)
	good := ageEncrypt(t, data, []*Recipient{r}, nil)
	bad := append([]byte(nil), good...)
	bad[len(bad)-20] ^= 1
	_, err := ageDecrypt(bad, []*Identity{id}, nil)
	wantCode(t, err, ErrPayload)
	for _, cut := range []int{1, 16, 17, 100, 65536 + 16, len(good) - 300} {
		_, err := ageDecrypt(good[:len(good)-cut], []*Identity{id}, nil)
		if err == nil {
			t.Fatalf("cut by %d: opened", cut)
		}
	}
	_, err = ageDecrypt(good[:len(good)-100], []*Identity{id}, nil)
	wantCode(t, err, ErrPayload)
	_, err = ageDecrypt(append(append([]byte(nil), good...), 'x'), []*Identity{id}, nil)
	wantCode(t, err, ErrPayload)
	other, _ := GenerateIdentity()
	_, err = ageDecrypt(good, []*Identity{other}, nil)
	wantCode(t, err, ErrNoMatch)
	_, err = ageDecrypt(nil, []*Identity{id}, nil)
	if err == nil {
		t.Fatal("an empty file opened")
	}
	_, err = ageDecrypt([]byte("not an age file at all\n"), []*Identity{id}, nil)
	wantCode(t, err, ErrHeader)
	hdr := append([]byte(nil), good...)
	hdr[40] ^= 1 // in the stanza: the header MAC or the key fails
	if _, err := ageDecrypt(hdr, []*Identity{id}, nil); err == nil {
		t.Fatal("a changed header opened")
	}
	_, err = ParseRecipient("age1nope")
	wantCode(t, err, ErrInval)
	_, err = ParseIdentity("AGE-SECRET-KEY-1NOPE")
	wantCode(t, err, ErrInval)
	p1, _ := PassphraseRecipient([]byte("pw"), 10)
	_, err = Encrypt(io.Discard, []*Recipient{p1, r}, nil)
	if err == nil {
		t.Fatal("a passphrase with another recipient")
	}
	_, err = Encrypt(io.Discard, nil, nil)
	if err == nil {
		t.Fatal("no recipient")
	}
	// the source's own error comes through as it is
	boom := errors.New("disk on fire")
	rd, _ := Decrypt(io.MultiReader(bytes.NewReader(good[:1000]), errReader{boom}), []*Identity{id}, nil)
	if _, err := io.ReadAll(rd); !errors.Is(err, boom) {
		t.Fatalf("source error: %v", err)
	}
	// a wrong passphrase
	pr, _ := PassphraseRecipient([]byte("right"), 10)
	pw := ageEncrypt(t, []byte("secret"), []*Recipient{pr}, &AgeOptions{Armor: true})
	wrong, _ := PassphraseIdentity([]byte("wrong"))
	_, err = ageDecrypt(pw, []*Identity{wrong}, nil)
	wantCode(t, err, ErrNoMatch)
	// broken armor
	arm := ageEncrypt(t, data[:1000], []*Recipient{r}, &AgeOptions{Armor: true})
	arm = bytes.Replace(arm, []byte("\n"), []byte("\n!"), 3)
	if _, err := ageDecrypt(arm, []*Identity{id}, nil); err == nil {
		t.Fatal("broken armor opened")
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestAgeAllOrNothing(t *testing.T) {
	id, r := newIdentityPair(t)
	data := random(t, 5*65536)
	blob := ageEncrypt(t, data, []*Recipient{r}, nil)
	blob[len(blob)-5] ^= 1 // the last chunk: the first four are authentic
	streamed, _ := Decrypt(bytes.NewReader(blob), []*Identity{id}, nil)
	first := make([]byte, 65536)
	if _, err := io.ReadFull(streamed, first); err != nil || !bytes.Equal(first, data[:65536]) {
		t.Fatalf("streaming released %v", err)
	}
	whole, _ := Decrypt(bytes.NewReader(blob), []*Identity{id}, &AgeOptions{AllOrNothing: true})
	n, err := whole.Read(first)
	if n != 0 || err == nil {
		t.Fatalf("all-or-nothing released %d bytes (%v)", n, err)
	}
	wantCode(t, err, ErrPayload)
	if n, err := whole.Read(first); n != 0 || err == nil {
		t.Fatalf("a second read released %d bytes", n)
	}
	// through io.Copy (WriteTo) too
	whole2, _ := Decrypt(bytes.NewReader(blob), []*Identity{id}, &AgeOptions{AllOrNothing: true})
	var sink bytes.Buffer
	if _, err := io.Copy(&sink, whole2); err == nil || sink.Len() != 0 {
		t.Fatalf("io.Copy released %d bytes (%v)", sink.Len(), err)
	}
	// an authentic file larger than the 8 MiB kept in memory goes through the spool file
	big := random(t, 9<<20)
	ok, _ := Decrypt(bytes.NewReader(ageEncrypt(t, big, []*Recipient{r}, nil)), []*Identity{id}, &AgeOptions{AllOrNothing: true})
	got, err := io.ReadAll(ok)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("all-or-nothing of 9 MiB: %v", err)
	}
	ok.(io.Closer).Close()
}

func TestAgeSSHKeys(t *testing.T) {
	for _, kt := range []KeyType{KeyEd25519, KeyRSA} {
		k, _ := GenerateKey(kt, 0)
		rc, err := RecipientFromKey(k)
		if err != nil {
			t.Fatal(err)
		}
		ic, err := IdentityFromKey(k)
		if err != nil {
			t.Fatal(err)
		}
		blob := ageEncrypt(t, []byte("to an ssh key"), []*Recipient{rc}, nil)
		if got, err := ageDecrypt(blob, []*Identity{ic}, nil); err != nil || string(got) != "to an ssh key" {
			t.Fatalf("%v: %v", kt, err)
		}
		if !strings.HasPrefix(rc.String(), "ssh-") {
			t.Fatalf("%v recipient %q", kt, rc)
		}
		line, _ := k.OpenSSHPublic("c")
		if pr, err := ParseRecipient(line); err != nil || pr.String() != rc.String() {
			t.Fatalf("%v: the OpenSSH line as a recipient: %v", kt, err)
		}
	}
	ec, _ := GenerateKey(KeyEC, 0)
	_, err := RecipientFromKey(ec)
	wantCode(t, err, ErrUnsupported)
	x, _ := GenerateKey(KeyX25519, 0)
	xr, _ := RecipientFromKey(x)
	if !strings.HasPrefix(xr.String(), "age1") {
		t.Fatalf("x25519 recipient %q", xr)
	}
	// age encrypts to an ssh-keygen key; Go opens it with the key read by LoadKey
	age := tool(t, "age")
	sshKeygen := tool(t, "ssh-keygen")
	d := t.TempDir()
	run(t, nil, sshKeygen, "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(d, "id"))
	made := run(t, []byte("for ssh"), age, "-R", filepath.Join(d, "id.pub"))
	k, err := LoadKey(filepath.Join(d, "id"), nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := IdentityFromKey(k)
	if got, err := ageDecrypt(made, []*Identity{id}, nil); err != nil || string(got) != "for ssh" {
		t.Fatalf("age -R: %v", err)
	}
}

// TestAgeConstantMemory streams 256 MiB each way (a generated source, a file in between, a
// discarding sink) in a fresh process (this test binary again, running only this test): its
// peak RSS grows by less than 64 MiB.
func TestAgeConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if os.Getenv("SLI_GO_RSS_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAgeConstantMemory$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "SLI_GO_RSS_CHILD=1")
		out, err := cmd.CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "peak RSS") {
				t.Log(strings.TrimSpace(line))
			}
		}
		if err != nil {
			t.Fatalf("the child: %v\n%s", err, out)
		}
		return
	}
	const total = 256 << 20
	id, r := newIdentityPair(t)
	runtime.GC()
	debug.FreeOSMemory()
	before := peakRSS(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "big.age"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, _ := Encrypt(f, []*Recipient{r}, &AgeOptions{Parallel: true})
	n, err := io.Copy(w, io.LimitReader(patternReader{}, total))
	if err != nil || n != total {
		t.Fatalf("encrypt: %d %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Seek(0, io.SeekStart)
	rd, _ := Decrypt(bufio.NewReaderSize(f, 1<<20), []*Identity{id}, &AgeOptions{Parallel: true})
	n, err = io.Copy(io.Discard, rd)
	if err != nil || n != total {
		t.Fatalf("decrypt: %d %v", n, err)
	}
	grew := peakRSS(t) - before
	t.Logf("peak RSS grew by %d KiB for %d MiB each way", grew>>10, total>>20)
	if grew > 64<<20 {
		t.Fatalf("peak RSS grew by %d MiB", grew>>20)
	}
}

type patternReader struct{}

func (patternReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i * 7)
	}
	return len(p), nil
}

// peakRSS returns VmHWM of this process, in bytes.
func peakRSS(t testing.TB) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmHWM")
	return 0
}

func TestAgeUseAfterClose(t *testing.T) {
	id, r := newIdentityPair(t)
	blob := ageEncrypt(t, random(t, 100000), []*Recipient{r}, nil)
	rd, _ := Decrypt(bytes.NewReader(blob), []*Identity{id}, nil)
	rd.Read(make([]byte, 10))
	rd.(io.Closer).Close()
	rd.(io.Closer).Close()
	if _, err := rd.Read(make([]byte, 10)); err == nil {
		t.Fatal("read after Close")
	}
	id.Close()
	id.Close()
	r.Close()
	_, err := Decrypt(bytes.NewReader(blob), []*Identity{id}, nil)
	wantCode(t, err, ErrClosed)
	_, err = Encrypt(io.Discard, []*Recipient{r}, nil)
	wantCode(t, err, ErrClosed)
	if r.String() != "" {
		t.Fatal("a closed recipient answered")
	}
	_, err = id.Encode()
	wantCode(t, err, ErrClosed)
	// readers and writers left to the garbage collector
	id2, r2 := newIdentityPair(t)
	for i := 0; i < 50; i++ {
		w, _ := Encrypt(io.Discard, []*Recipient{r2}, nil)
		w.Write([]byte("abandoned"))
		rd, _ := Decrypt(bytes.NewReader(blob), []*Identity{id2}, nil)
		_ = rd
	}
	runtime.GC()
	runtime.GC()
}
