// Command sli-interop is the Go side of the cross-language test (bindings/interop_test.py): one
// small command per operation, bytes on stdin and stdout, the same commands as the Python and
// Node ones.
//
//	seal KEYRING AD | open KEYRING AD          sealed blobs
//	encrypt RECIPIENT | decrypt IDENTITY_FILE  age, streaming
//	serve CERT KEY                             TLS: prints the port, answers one line, close_notify
//	connect PORT CA NAME                       TLS: sends a line, prints the answer
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"sli"
)

const lang = "go"

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: sli-interop seal|open|encrypt|decrypt|serve|connect ARGS")
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	switch args[0] {
	case "seal", "open":
		kr, err := sli.LoadKeyring(args[1])
		if err != nil {
			return err
		}
		defer kr.Close()
		in, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		var res []byte
		if args[0] == "seal" {
			res, err = kr.Seal(in, []byte(args[2]))
		} else {
			res, err = kr.Open(in, []byte(args[2]))
		}
		if err != nil {
			return err
		}
		_, err = out.Write(res)
		return err
	case "encrypt":
		r, err := sli.ParseRecipient(args[1])
		if err != nil {
			return err
		}
		w, err := sli.Encrypt(out, []*sli.Recipient{r}, nil)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, os.Stdin); err != nil {
			return err
		}
		return w.Close()
	case "decrypt":
		text, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		var ids []*sli.Identity
		for _, line := range strings.Split(string(text), "\n") {
			if strings.HasPrefix(line, "AGE-SECRET-KEY-") {
				id, err := sli.ParseIdentity(strings.TrimSpace(line))
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
		}
		r, err := sli.Decrypt(os.Stdin, ids, nil)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, r)
		return err
	case "serve":
		ctx, err := sli.NewServerContext(sli.Config{"cert": args[1], "key": args[2]})
		if err != nil {
			return err
		}
		l, err := sli.Listen("tcp", "127.0.0.1:0", ctx)
		if err != nil {
			return err
		}
		defer l.Close()
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		c, err := l.Accept()
		if err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadBytes('\n')
		if err != nil && err != io.EOF {
			return err
		}
		if _, err := c.Write(append([]byte(lang+" heard: "), line...)); err != nil {
			return err
		}
		if err := c.(*sli.Conn).CloseWrite(); err != nil {
			return err
		}
		io.Copy(io.Discard, c) // until the peer's close_notify (or its leaving after ours)
		return c.Close()
	case "connect":
		ctx, err := sli.NewClientContext(sli.Config{"ca": args[2]})
		if err != nil {
			return err
		}
		raw, err := net.Dial("tcp", "127.0.0.1:"+args[1])
		if err != nil {
			return err
		}
		c := sli.Client(raw, ctx, args[3])
		defer c.Close()
		if _, err := c.Write([]byte("hello from " + lang + "\n")); err != nil {
			return err
		}
		_, err = io.Copy(out, c)
		return err
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
