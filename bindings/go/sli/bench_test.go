package sli

import (
	"bytes"
	"io"
	"testing"
)

func benchSeal(b *testing.B, n int) {
	kr, _ := GenerateKeyring()
	defer kr.Close()
	data, ad := make([]byte, n), []byte("t.c")
	b.SetBytes(int64(n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := kr.Seal(data, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func benchOpen(b *testing.B, n int) {
	kr, _ := GenerateKeyring()
	defer kr.Close()
	ad := []byte("t.c")
	blob, _ := kr.Seal(make([]byte, n), ad)
	b.SetBytes(int64(n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := kr.Open(blob, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSealTo(b *testing.B, n int) {
	kr, _ := GenerateKeyring()
	defer kr.Close()
	data, ad := make([]byte, n), []byte("t.c")
	buf := make([]byte, 0, n+SealOverhead)
	b.SetBytes(int64(n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := kr.SealTo(buf, data, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func benchOpenTo(b *testing.B, n int) {
	kr, _ := GenerateKeyring()
	defer kr.Close()
	ad := []byte("t.c")
	blob, _ := kr.Seal(make([]byte, n), ad)
	buf := make([]byte, 0, n)
	b.SetBytes(int64(n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := kr.OpenTo(buf, blob, ad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealTo64 is Keyring.SealTo of 64 bytes into a reused buffer (as bench_seal does in C).
func BenchmarkSealTo64(b *testing.B) { benchSealTo(b, 64) }

// BenchmarkOpenTo64 is Keyring.OpenTo of 64 bytes into a reused buffer.
func BenchmarkOpenTo64(b *testing.B) { benchOpenTo(b, 64) }

// BenchmarkSealTo1M is Keyring.SealTo of 1 MiB into a reused buffer.
func BenchmarkSealTo1M(b *testing.B) { benchSealTo(b, 1<<20) }

// BenchmarkOpenTo1M is Keyring.OpenTo of 1 MiB into a reused buffer.
func BenchmarkOpenTo1M(b *testing.B) { benchOpenTo(b, 1<<20) }

// BenchmarkSeal64 is Keyring.Seal of 64 bytes (compare with build/bench/bench_seal's C figure).
func BenchmarkSeal64(b *testing.B) { benchSeal(b, 64) }

// BenchmarkOpen64 is Keyring.Open of a 64-byte plaintext.
func BenchmarkOpen64(b *testing.B) { benchOpen(b, 64) }

// BenchmarkSeal1M is Keyring.Seal of 1 MiB.
func BenchmarkSeal1M(b *testing.B) { benchSeal(b, 1<<20) }

// BenchmarkOpen1M is Keyring.Open of 1 MiB.
func BenchmarkOpen1M(b *testing.B) { benchOpen(b, 1<<20) }

// BenchmarkSeal64Parallel seals 64 bytes from GOMAXPROCS goroutines on one keyring.
func BenchmarkSeal64Parallel(b *testing.B) {
	kr, _ := GenerateKeyring()
	defer kr.Close()
	b.SetBytes(64)
	b.RunParallel(func(pb *testing.PB) {
		data := make([]byte, 64)
		for pb.Next() {
			if _, err := kr.Seal(data, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkAgeEncrypt streams 64 MiB through Encrypt (Parallel) into io.Discard.
func BenchmarkAgeEncrypt(b *testing.B) {
	_, r := newIdentityPair(b)
	const n = 64 << 20
	b.SetBytes(n)
	for i := 0; i < b.N; i++ {
		w, _ := Encrypt(io.Discard, []*Recipient{r}, &AgeOptions{Parallel: true})
		if _, err := io.Copy(w, io.LimitReader(patternReader{}, n)); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
}

// BenchmarkAgeDecrypt streams 64 MiB through Decrypt (Parallel) into io.Discard.
func BenchmarkAgeDecrypt(b *testing.B) {
	id, r := newIdentityPair(b)
	const n = 64 << 20
	var file bytes.Buffer
	w, _ := Encrypt(&file, []*Recipient{r}, nil)
	io.Copy(w, io.LimitReader(patternReader{}, n))
	w.Close()
	b.SetBytes(n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rd, _ := Decrypt(bytes.NewReader(file.Bytes()), []*Identity{id}, &AgeOptions{Parallel: true})
		if _, err := io.Copy(io.Discard, rd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTLSPipe1M moves 1 MiB per op through a TLS connection over net.Pipe.
func BenchmarkTLSPipe1M(b *testing.B) {
	s, c := pipePair(b, serverCtx(b, nil), clientCtx(b, nil))
	data := make([]byte, 1<<20)
	go io.Copy(io.Discard, s)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(data); err != nil {
			b.Fatal(err)
		}
	}
}
