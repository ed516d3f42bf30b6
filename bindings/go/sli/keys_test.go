package sli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeysSignVerify(t *testing.T) {
	for _, c := range []struct {
		t    KeyType
		bits int
	}{{KeyEC, 0}, {KeyEC, 384}, {KeyEd25519, 0}, {KeyRSA, 2048}} {
		k, err := GenerateKey(c.t, c.bits)
		if err != nil {
			t.Fatal(err)
		}
		if k.Type() != c.t || !k.HasPrivate() || k.Bits() == 0 {
			t.Fatalf("%v: type %v bits %d", c.t, k.Type(), k.Bits())
		}
		sig, err := k.Sign([]byte("message"))
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Verify(sig, []byte("message")); err != nil {
			t.Fatalf("%v: %v", c.t, err)
		}
		wantCode(t, k.Verify(sig, []byte("messagE")), ErrSignature)
		bad := append([]byte(nil), sig...)
		bad[len(bad)/2] ^= 1
		if err := k.Verify(bad, []byte("message")); err == nil {
			t.Fatalf("%v: a flipped signature verified", c.t)
		}
		wantCode(t, k.Verify(nil, []byte("message")), ErrSignature)
		k.Close()
	}
	x, _ := GenerateKey(KeyX25519, 0)
	_, err := x.Sign([]byte("m"))
	wantCode(t, err, ErrUnsupported)
	_, err = GenerateKey(KeyRSA, 1024)
	wantCode(t, err, ErrWeakKey)
	_, err = GenerateKey(KeyType(99), 0)
	if err == nil {
		t.Fatal("an unknown key type was made")
	}
	if KeyEd25519.String() != "ed25519" || KeyType(99).String() != "KeyType(99)" {
		t.Fatal("KeyType.String")
	}
}

func TestKeysOpenSSLVerifies(t *testing.T) {
	openssl := tool(t, "openssl")
	d := t.TempDir()
	k, _ := GenerateKey(KeyEC, 0)
	pub, _ := k.PublicPEM()
	msg := []byte("signed in Go")
	sig, _ := k.Sign(msg)
	os.WriteFile(filepath.Join(d, "pub.pem"), pub, 0o600)
	os.WriteFile(filepath.Join(d, "msg"), msg, 0o600)
	os.WriteFile(filepath.Join(d, "sig"), sig, 0o600)
	out := run(t, nil, openssl, "dgst", "-sha256", "-verify", filepath.Join(d, "pub.pem"),
		"-signature", filepath.Join(d, "sig"), filepath.Join(d, "msg"))
	if !strings.Contains(string(out), "Verified OK") {
		t.Fatalf("openssl: %s", out)
	}
	// and the reverse: openssl signs, Go verifies
	run(t, nil, openssl, "genpkey", "-algorithm", "ed25519", "-out", filepath.Join(d, "ossl.key"))
	run(t, nil, openssl, "pkeyutl", "-sign", "-rawin", "-inkey", filepath.Join(d, "ossl.key"),
		"-in", filepath.Join(d, "msg"), "-out", filepath.Join(d, "ossl.sig"))
	ok, err := LoadKey(filepath.Join(d, "ossl.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	osig, _ := os.ReadFile(filepath.Join(d, "ossl.sig"))
	if err := ok.Verify(osig, msg); err != nil {
		t.Fatalf("an openssl Ed25519 signature: %v", err)
	}
}

func TestKeysPEM(t *testing.T) {
	d := t.TempDir()
	k, _ := GenerateKey(KeyEd25519, 0)
	pem, err := k.PrivatePEM([]byte("a long passphrase"))
	if err != nil || !bytes.Contains(pem, []byte("ENCRYPTED PRIVATE KEY")) {
		t.Fatalf("encrypted PEM: %v %s", err, pem)
	}
	path := filepath.Join(d, "k.pem")
	os.WriteFile(path, pem, 0o600)
	_, err = LoadKey(path, []byte("wrong"))
	wantCode(t, err, ErrPassword)
	if !strings.Contains(err.(*Error).Message, "k.pem") {
		t.Fatalf("message does not name the file: %v", err)
	}
	_, err = LoadKey(path, nil)
	wantCode(t, err, ErrPassword)
	again, err := LoadKey(path, []byte("a long passphrase"))
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := k.Sign([]byte("m"))
	if err := again.Verify(sig, []byte("m")); err != nil || !again.HasPrivate() {
		t.Fatalf("reloaded key: %v", err)
	}
	pub, _ := k.PublicPEM()
	os.WriteFile(filepath.Join(d, "pub.pem"), pub, 0o600)
	pk, err := LoadKey(filepath.Join(d, "pub.pem"), nil)
	if err != nil || pk.HasPrivate() || pk.Verify(sig, []byte("m")) != nil {
		t.Fatalf("public key: %v", err)
	}
	_, err = pk.Sign([]byte("m"))
	if err == nil {
		t.Fatal("a public key signed")
	}
	line, err := k.OpenSSHPublic("me@host")
	if err != nil || !strings.HasPrefix(line, "ssh-ed25519 AAAA") || !strings.HasSuffix(line, " me@host") {
		t.Fatalf("OpenSSH line %q: %v", line, err)
	}
	if sshKeygen, err := exec.LookPath("ssh-keygen"); err == nil {
		priv, _ := k.OpenSSHPrivate("")
		os.WriteFile(filepath.Join(d, "id"), priv, 0o600)
		out := run(t, nil, sshKeygen, "-y", "-f", filepath.Join(d, "id"))
		if !strings.HasPrefix(line, strings.TrimSpace(string(out))) {
			t.Fatalf("ssh-keygen -y: %s vs %s", out, line)
		}
	}
	ec, _ := GenerateKey(KeyEC, 0)
	_, err = ec.OpenSSHPublic("")
	wantCode(t, err, ErrUnsupported)
	os.WriteFile(filepath.Join(d, "junk"), []byte("junk\n"), 0o600)
	if _, err := LoadKey(filepath.Join(d, "junk"), nil); err == nil {
		t.Fatal("junk loaded as a key")
	}
}

func TestSignerPieces(t *testing.T) {
	data := random(t, 300000)
	for _, kt := range []KeyType{KeyEC, KeyEd25519, KeyRSA} {
		k, _ := GenerateKey(kt, 0)
		s, err := k.NewSigner()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(data); i += 7777 {
			end := i + 7777
			if end > len(data) {
				end = len(data)
			}
			s.Write(data[i:end])
		}
		s.Write(nil)
		sig, err := s.Sign()
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Verify(sig, data); err != nil {
			t.Fatalf("%v: streamed signature: %v", kt, err)
		}
		s.Close()
		v, _ := k.NewVerifier()
		v.Write(data[:1000])
		v.Write(data[1000:])
		whole, _ := k.Sign(data)
		if err := v.Verify(whole); err != nil {
			t.Fatalf("%v: streamed verify: %v", kt, err)
		}
		bad, _ := k.NewVerifier()
		bad.Write(data[:len(data)-1])
		wantCode(t, bad.Verify(sig), ErrSignature)
		k.Close() // the signer keeps its own reference to the key
		s2, _ := k.NewSigner()
		if s2 != nil {
			t.Fatal("a signer from a closed key")
		}
		_, err = s.Write([]byte("x"))
		wantCode(t, err, ErrClosed)
	}
	x, _ := GenerateKey(KeyX25519, 0)
	_, err := x.NewSigner()
	wantCode(t, err, ErrUnsupported)
}

func TestKeyUseAfterClose(t *testing.T) {
	k, _ := GenerateKey(KeyEd25519, 0)
	s, _ := k.NewSigner()
	k.Close()
	k.Close()
	_, err := k.Sign([]byte("m"))
	wantCode(t, err, ErrClosed)
	_, err = k.PublicPEM()
	wantCode(t, err, ErrClosed)
	if k.Type() != 0 || k.HasPrivate() {
		t.Fatal("a closed key answered")
	}
	// the signer made before Close still works: libsli's signer holds a reference
	s.Write([]byte("m"))
	if _, err := s.Sign(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Sign()
	if err == nil {
		t.Fatal("a second Sign")
	}
}
