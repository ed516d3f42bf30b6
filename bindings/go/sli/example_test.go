package sli_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"

	"sli"
)

func Example_seal() {
	kr, err := sli.GenerateKeyring() // or sli.LoadKeyring("fields.keyring")
	if err != nil {
		panic(err)
	}
	defer kr.Close()
	blob, _ := kr.Seal([]byte("4111 1111 1111 1111"), []byte("customer 42"))
	plain, _ := kr.Open(blob, []byte("customer 42"))
	fmt.Println(string(plain), len(blob)-len(plain))

	_, err = kr.Open(blob, []byte("customer 43"))
	var e *sli.Error
	fmt.Println(errors.Is(err, sli.ErrPayload), errors.As(err, &e) && e.Name == "SLI_E_PAYLOAD")

	kr2, _ := kr.Rotate() // old blobs still open; new ones use the new primary
	id, _ := sli.SealedKeyID(blob)
	fmt.Println(id == kr2.KeyIDs()[1])
	// Output:
	// 4111 1111 1111 1111 33
	// true true
	// true
}

func Example_age() {
	me, _ := sli.GenerateIdentity()
	to, _ := me.Recipient()
	var file bytes.Buffer
	w, _ := sli.Encrypt(&file, []*sli.Recipient{to}, &sli.AgeOptions{Armor: true})
	io.Copy(w, bytes.NewReader([]byte("a report"))) // any size, constant memory
	w.Close()                                       // writes the last chunk

	r, _ := sli.Decrypt(&file, []*sli.Identity{me}, &sli.AgeOptions{AllOrNothing: true})
	plain, err := io.ReadAll(r)
	fmt.Println(string(plain), err)
	// Output: a report <nil>
}

func Example_keys() {
	k, _ := sli.GenerateKey(sli.KeyEd25519, 0)
	sig, _ := k.Sign([]byte("message"))
	fmt.Println(k.Verify(sig, []byte("message")))
	fmt.Println(errors.Is(k.Verify(sig, []byte("messagE")), sli.ErrSignature))
	// Output:
	// <nil>
	// true
}

func Example_certificates() {
	key, _ := sli.GenerateKey(sli.KeyEC, 256)
	pem, _ := sli.SelfSigned(key, "/CN=localhost", []string{"DNS:localhost"}, 30, false)
	cert, _ := sli.ParseCertificate(pem)
	fmt.Println(cert.Subject(), cert.SANs(), int(cert.NotAfter().Sub(cert.NotBefore()).Hours()/24))
	// Output: CN = localhost [DNS:localhost] 30
}

// Example_tls runs a TLS server and client over a net.Pipe: any net.Conn works.
func Example_tls() {
	dir, _ := os.MkdirTemp("", "sli-example-")
	defer os.RemoveAll(dir)
	key, _ := sli.GenerateKey(sli.KeyEC, 256)
	certPEM, _ := sli.SelfSigned(key, "/CN=localhost", []string{"DNS:localhost"}, 1, false)
	keyPEM, _ := key.PrivatePEM(nil)
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)

	srv, err := sli.NewServerContext(sli.Config{"cert": filepath.Join(dir, "cert.pem"),
		"key": filepath.Join(dir, "key.pem"), "alpn": "h2"})
	if err != nil {
		panic(err)
	}
	cli, _ := sli.NewClientContext(sli.Config{"ca": filepath.Join(dir, "cert.pem"), "alpn": "h2"})

	a, b := net.Pipe()
	go func() {
		s := sli.Server(a, srv)
		defer s.Close() // close_notify, then the pipe
		buf := make([]byte, 64)
		n, _ := s.Read(buf)
		s.Write(append([]byte("echo: "), buf[:n]...))
	}()
	c := sli.Client(b, cli, "localhost")
	defer c.Close()
	c.Write([]byte("hello"))
	reply, err := io.ReadAll(c) // io.EOF only after the server's close_notify
	fmt.Println(string(reply), err, c.Version(), c.ALPN())
	// Output: echo: hello <nil> TLSv1.3 h2
}
