package sli

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// pkiDir holds a CA and a leaf for "localhost" and 127.0.0.1, made with this binding once per
// test binary (TestMain).
var pkiDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "sli-go-test-")
	if err != nil {
		panic(err)
	}
	pkiDir = d
	if err := makePKI(d); err != nil {
		os.RemoveAll(d)
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func makePKI(d string) error {
	caKey, err := GenerateKey(KeyEC, 256)
	if err != nil {
		return err
	}
	defer caKey.Close()
	ca, err := SelfSigned(caKey, "/CN=sli go test CA", nil, 2, true)
	if err != nil {
		return err
	}
	leafKey, err := GenerateKey(KeyEC, 256)
	if err != nil {
		return err
	}
	defer leafKey.Close()
	csr, err := CreateCSR(leafKey, "/CN=localhost", []string{"DNS:localhost", "IP:127.0.0.1"})
	if err != nil {
		return err
	}
	leaf, err := Issue(ca, caKey, csr, 2)
	if err != nil {
		return err
	}
	keyPEM, err := leafKey.PrivatePEM(nil)
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"ca.pem": ca, "leaf.pem": leaf, "leaf.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(d, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func caFile() string   { return filepath.Join(pkiDir, "ca.pem") }
func certFile() string { return filepath.Join(pkiDir, "leaf.pem") }
func keyFile() string  { return filepath.Join(pkiDir, "leaf.key") }

// cli returns the path of the sli command: $SLI_BUILD_DIR/tools/sli, else the build tree's.
func cli(t testing.TB) string {
	t.Helper()
	build := os.Getenv("SLI_BUILD_DIR")
	if build == "" {
		build = filepath.Join("..", "..", "..", "build")
	}
	p, err := filepath.Abs(filepath.Join(build, "tools", "sli"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no sli command at %s (set SLI_BUILD_DIR)", p)
	}
	return p
}

// tool returns the path of an external program, or skips the test.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed", name)
	}
	return p
}

// run runs a command with stdin and returns its stdout, failing the test on an error.
func run(t testing.TB, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, errb.String())
	}
	return out.Bytes()
}

func random(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// wantCode fails the test unless err is an *Error with the SLI_E_* name want and a message.
func wantCode(t testing.TB, err error, want *Error) {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("want %s, got %T %v", want.Name, err, err)
	}
	if e.Name != want.Name || e.Code != want.Code || !errorsIs(err, want) {
		t.Fatalf("want %s, got %v", want.Name, err)
	}
	if e.Message == "" {
		t.Fatalf("%s without a message", e.Name)
	}
}

// runEnv is run with extra environment variables.
func runEnv(t testing.TB, stdin []byte, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, errb.String())
	}
	return out.Bytes()
}
