package sli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func TestSealRoundTripSizes(t *testing.T) {
	kr, err := GenerateKeyring()
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Close()
	for _, n := range []int{0, 1, 33, 4096, 1 << 20, 16 << 20} {
		data := random(t, n)
		blob, err := kr.Seal(data, []byte("row 7"))
		if err != nil {
			t.Fatal(err)
		}
		if len(blob) != n+SealOverhead {
			t.Fatalf("%d bytes sealed to %d", n, len(blob))
		}
		got, err := kr.Open(blob, []byte("row 7"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("open %d bytes: %v", n, err)
		}
	}
	// nil and empty ad are the same ad
	blob, _ := kr.Seal([]byte("x"), nil)
	if got, err := kr.Open(blob, []byte{}); err != nil || string(got) != "x" {
		t.Fatalf("nil vs empty ad: %v", err)
	}
}

func TestSealToOpenTo(t *testing.T) {
	kr, _ := GenerateKeyring()
	buf := make([]byte, 0, 1000)
	prefix := append(buf, "hdr:"...)
	blob, err := kr.SealTo(prefix, []byte("field"), nil)
	if err != nil || string(blob[:4]) != "hdr:" || len(blob) != 4+5+SealOverhead || &blob[0] != &buf[:1][0] {
		t.Fatalf("SealTo: %v", err)
	}
	out, err := kr.OpenTo([]byte("got:"), blob[4:], nil)
	if err != nil || string(out) != "got:field" {
		t.Fatalf("OpenTo %q %v", out, err)
	}
	bad := append([]byte(nil), blob[4:]...)
	bad[10] ^= 1
	dst := make([]byte, 2, 100)
	res, err := kr.OpenTo(dst, bad, nil)
	wantCode(t, err, ErrPayload)
	if len(res) != 2 || bytes.Count(dst[2:100], []byte{0}) != 98 {
		t.Fatal("a failed OpenTo left plaintext behind")
	}
}

// TestSealToAllocatesNothing: SealTo and OpenTo into reused buffers make no Go allocation (the
// message pointer and the length come back from C by value); Seal allocates only its result.
func TestSealToAllocatesNothing(t *testing.T) {
	kr, _ := GenerateKeyring()
	data := make([]byte, 64)
	buf, obuf := make([]byte, 0, 200), make([]byte, 0, 100)
	blob, _ := kr.Seal(data, nil)
	if a := testing.AllocsPerRun(200, func() { kr.SealTo(buf, data, nil) }); a != 0 {
		t.Errorf("SealTo: %v allocations", a)
	}
	if a := testing.AllocsPerRun(200, func() { kr.OpenTo(obuf, blob, nil) }); a != 0 {
		t.Errorf("OpenTo: %v allocations", a)
	}
	if a := testing.AllocsPerRun(200, func() { kr.Seal(data, nil) }); a != 1 {
		t.Errorf("Seal: %v allocations", a)
	}
}

func TestSealRefusalsAreNamed(t *testing.T) {
	kr, _ := GenerateKeyring()
	blob, _ := kr.Seal([]byte("card number"), []byte("customer 42"))
	_, err := kr.Open(blob, []byte("customer 43"))
	wantCode(t, err, ErrPayload)
	for i := range blob {
		bad := append([]byte(nil), blob...)
		bad[i] ^= 1
		if _, err := kr.Open(bad, []byte("customer 42")); err == nil {
			t.Fatalf("byte %d flipped and the blob opened", i)
		} else if i >= 5 {
			wantCode(t, err, ErrPayload)
		}
	}
	_, err = kr.Open(blob[:len(blob)-1], []byte("customer 42"))
	wantCode(t, err, ErrPayload)
	_, err = kr.Open(append(append([]byte(nil), blob...), 0), []byte("customer 42"))
	wantCode(t, err, ErrPayload)
	_, err = kr.Open([]byte{1, 0}, nil)
	wantCode(t, err, ErrHeader)
	_, err = kr.Open(nil, nil)
	wantCode(t, err, ErrHeader)
	other, _ := GenerateKeyring()
	_, err = other.Open(blob, []byte("customer 42"))
	wantCode(t, err, ErrNoMatch)
	_, err = SealedKeyID([]byte{9})
	wantCode(t, err, ErrHeader)
}

func TestSealRotation(t *testing.T) {
	kr, _ := GenerateKeyring()
	old, _ := kr.Seal([]byte("before"), nil)
	kr2, err := kr.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	ids := kr2.KeyIDs()
	if len(ids) != 2 || ids[1] != kr.KeyIDs()[0] || len(kr2.Created()) != 2 {
		t.Fatalf("rotated ids %v, old %v", ids, kr.KeyIDs())
	}
	fresh, _ := kr2.Seal([]byte("after"), nil)
	if id, _ := SealedKeyID(fresh); id != ids[0] {
		t.Fatalf("new blob sealed by %x, want %x", id, ids[0])
	}
	if id, _ := SealedKeyID(old); id != kr.KeyIDs()[0] {
		t.Fatalf("old blob sealed by %x", id)
	}
	if got, err := kr2.Open(old, nil); err != nil || string(got) != "before" {
		t.Fatalf("old blob after rotation: %v", err)
	}
	_, err = kr.Open(fresh, nil)
	wantCode(t, err, ErrNoMatch)
}

func TestKeyringFiles(t *testing.T) {
	d := t.TempDir()
	kr, _ := GenerateKeyring()
	path := filepath.Join(d, "ring")
	if err := kr.Save(path); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file mode %v", st.Mode())
	}
	again, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := kr.Seal([]byte("x"), nil)
	if got, err := again.Open(blob, nil); err != nil || string(got) != "x" {
		t.Fatalf("loaded keyring: %v", err)
	}
	bad := filepath.Join(d, "bad")
	os.WriteFile(bad, []byte("not a keyring\n"), 0o600)
	_, err = LoadKeyring(bad)
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Message, "bad") {
		t.Fatalf("a bad keyring file: %v (the message must name it)", err)
	}
	_, err = LoadKeyring(filepath.Join(d, "missing"))
	if !errors.As(err, &e) || !strings.HasPrefix(e.Name, "SLI_E_") {
		t.Fatalf("a missing file: %v", err)
	}
	err = kr.Save(filepath.Join(d, "no", "such", "dir", "ring"))
	wantCode(t, err, ErrFile)
}

func TestSealCLIInterop(t *testing.T) {
	sli := cli(t)
	d := t.TempDir()
	kr, _ := GenerateKeyring()
	path := filepath.Join(d, "ring")
	kr.Save(path)
	blob := run(t, []byte("from C"), sli, "seal", "--keyring", path, "--ad", "x")
	if got, err := kr.Open(blob, []byte("x")); err != nil || string(got) != "from C" {
		t.Fatalf("a blob sealed by the CLI: %v", err)
	}
	mine, _ := kr.Seal([]byte("from Go"), []byte("y"))
	if out := run(t, mine, sli, "unseal", "--keyring", path, "--ad", "y"); string(out) != "from Go" {
		t.Fatalf("the CLI opened %q", out)
	}
	// a keyring made by the CLI loads here
	p2 := filepath.Join(d, "cli.keyring")
	run(t, nil, sli, "keyring", "new", p2)
	k2, err := LoadKeyring(p2)
	if err != nil {
		t.Fatal(err)
	}
	blob = run(t, []byte("z"), sli, "seal", "--keyring", p2)
	if got, err := k2.Open(blob, nil); err != nil || string(got) != "z" {
		t.Fatalf("CLI keyring: %v", err)
	}
}

// TestSealConcurrent seals and opens from 50 goroutines at once on one keyring (run it under
// -race too), and closes another keyring while goroutines use it.
func TestSealConcurrent(t *testing.T) {
	kr, _ := GenerateKeyring()
	defer kr.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for g := 0; g < 50; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			ad := []byte{byte(g)}
			for i := 0; i < 200; i++ {
				data := bytes.Repeat([]byte{byte(i)}, (i*37)%5000)
				blob, err := kr.Seal(data, ad)
				if err != nil {
					errs <- err
					return
				}
				got, err := kr.Open(blob, ad)
				if err != nil || !bytes.Equal(got, data) {
					errs <- errors.New("round trip failed")
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	doomed, _ := GenerateKeyring()
	var wg2 sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for i := 0; i < 2000; i++ {
				if _, err := doomed.Seal([]byte("x"), nil); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("after Close: %v", err)
					}
					return
				}
			}
		}()
	}
	doomed.Close()
	wg2.Wait()
}

func TestKeyringUseAfterClose(t *testing.T) {
	kr, _ := GenerateKeyring()
	blob, _ := kr.Seal([]byte("x"), nil)
	if err := kr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := kr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err := kr.Seal([]byte("x"), nil)
	wantCode(t, err, ErrClosed)
	_, err = kr.Open(blob, nil)
	wantCode(t, err, ErrClosed)
	_, err = kr.Rotate()
	wantCode(t, err, ErrClosed)
	if kr.KeyIDs() != nil || kr.Save(filepath.Join(t.TempDir(), "r")) == nil {
		t.Fatal("a closed keyring answered")
	}
	if !errors.Is(err, errClosed("x")) {
		t.Fatal("ErrClosed by code")
	}
}

func TestErrorIs(t *testing.T) {
	e := newError(-1102, "")
	if !errors.Is(e, ErrTruncated) || !errors.Is(e, ErrTruncated) || errors.Is(e, ErrPayload) {
		t.Fatal("Is by code")
	}
	if e.Name != "SLI_E_TRUNCATED" || e.Message == "" || !strings.HasPrefix(e.Error(), "SLI_E_TRUNCATED: ") {
		t.Fatalf("%#v", e)
	}
	if ErrPayload.Code != -1703 || ErrPayload.Name != "SLI_E_PAYLOAD" {
		t.Fatalf("%#v", ErrPayload)
	}
	if !strings.HasPrefix(Version(), "1.") {
		t.Fatalf("version %q", Version())
	}
}
