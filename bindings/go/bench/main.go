// Command slibench measures what the Go binding adds: seal and open of 64 B and 1 MiB per call
// from Go against the same calls from C (build/bench/bench_seal, the same libsli.so.1), and
// (-age) 1 GiB of age encryption and decryption through Encrypt/Decrypt against the sli CLI, input
// and output in memory (/dev/shm, /dev/null). Rounds are interleaved; it prints medians and their
// spread (min–max), never the best run.
//
//	cd bindings/go/bench && PKG_CONFIG_PATH=../../../build/meson-uninstalled \
//	  LD_LIBRARY_PATH=../../../build/plugin GOFLAGS=-mod=mod GOPROXY=off go run . -runs 5 -age
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"sli"
)

func median(xs []float64) (m, lo, hi float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		m = s[n/2]
	} else {
		m = (s[n/2-1] + s[n/2]) / 2
	}
	return m, s[0], s[n-1]
}

// perCall returns ns per call of f over about d.
func perCall(f func(), d time.Duration) float64 {
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		for i := 0; i < 100; i++ {
			f()
		}
		n += 100
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

// cFigures runs bench_seal once: ns per call of sli_seal / sli_open at 64 B and 1 MiB.
func cFigures(benchSeal string) (map[string]float64, error) {
	out, err := exec.Command(benchSeal, "3").Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", benchSeal, err)
	}
	size := map[string]float64{"64 B": 64, "1 MiB": 1 << 20}
	got := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		cols := strings.Split(strings.Trim(strings.TrimSpace(sc.Text()), "|"), "|")
		for i := range cols {
			cols[i] = strings.TrimSpace(cols[i])
		}
		if len(cols) < 9 || size[cols[0]] == 0 {
			continue
		}
		seal, _ := strconv.ParseFloat(cols[4], 64)
		openMBs, _ := strconv.ParseFloat(cols[6], 64)
		got["seal "+cols[0]] = seal
		got["open "+cols[0]] = size[cols[0]] / (openMBs * 1e6) * 1e9
	}
	if len(got) != 4 {
		return nil, fmt.Errorf("bench_seal printed no figures:\n%s", out)
	}
	return got, nil
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "slibench:", err)
		os.Exit(1)
	}
}

func main() {
	runs := flag.Int("runs", 5, "rounds")
	doAge := flag.Bool("age", false, "also 1 GiB of age through the streams against the sli CLI")
	build := flag.String("build", "", "the meson build directory (default $SLI_BUILD_DIR or ../../../build)")
	flag.Parse()
	if *build == "" {
		*build = os.Getenv("SLI_BUILD_DIR")
	}
	if *build == "" {
		*build = filepath.Join("..", "..", "..", "build")
	}
	kr, err := sli.GenerateKeyring()
	must(err)
	ad := []byte("t.c")
	names := []string{"seal 64 B", "open 64 B", "seal 1 MiB", "open 1 MiB"}
	goAlloc := map[string][]float64{}
	goReuse := map[string][]float64{}
	cNs := map[string][]float64{}
	for r := 0; r < *runs; r++ {
		c, err := cFigures(filepath.Join(*build, "bench", "bench_seal"))
		must(err)
		for _, n := range names {
			cNs[n] = append(cNs[n], c[n])
		}
		for _, size := range []int{64, 1 << 20} {
			label := map[int]string{64: "64 B", 1 << 20: "1 MiB"}[size]
			data := make([]byte, size)
			blob, _ := kr.Seal(data, ad)
			buf := make([]byte, 0, size+sli.SealOverhead)
			d := 300 * time.Millisecond
			goAlloc["seal "+label] = append(goAlloc["seal "+label], perCall(func() { kr.Seal(data, ad) }, d))
			goAlloc["open "+label] = append(goAlloc["open "+label], perCall(func() { kr.Open(blob, ad) }, d))
			goReuse["seal "+label] = append(goReuse["seal "+label], perCall(func() { kr.SealTo(buf, data, ad) }, d))
			goReuse["open "+label] = append(goReuse["open "+label], perCall(func() { kr.OpenTo(buf, blob, ad) }, d))
		}
	}
	fmt.Printf("slibench: medians of %d rounds (spread min–max), ns per call; one core per call\n\n", *runs)
	fmt.Println("| call | C (bench_seal) | Go SealTo/OpenTo (reused buffer) | overhead | Go Seal/Open (new slice) | overhead |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, n := range names {
		cm, clo, chi := median(cNs[n])
		rm, rlo, rhi := median(goReuse[n])
		am, alo, ahi := median(goAlloc[n])
		fmt.Printf("| %s | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | %+.0f ns (%.2f×) | %.0f (%.0f–%.0f) | %+.0f ns (%.2f×) |\n",
			n, cm, clo, chi, rm, rlo, rhi, rm-cm, rm/cm, am, alo, ahi, am-cm, am/cm)
	}
	if *doAge {
		ageBench(*runs, filepath.Join(*build, "tools", "sli"))
	}
}

func ageBench(runs int, cli string) {
	base := "/dev/shm"
	if st, err := os.Stat(base); err != nil || !st.IsDir() {
		base = ""
	}
	d, err := os.MkdirTemp(base, "sli-go-age-")
	must(err)
	defer os.RemoveAll(d)
	me, err := sli.GenerateIdentity()
	must(err)
	rcpt, _ := me.Recipient()
	secret, _ := me.Encode()
	must(os.WriteFile(filepath.Join(d, "id"), []byte(secret+"\n"), 0o600))
	in := filepath.Join(d, "in")
	f, err := os.Create(in)
	must(err)
	block := make([]byte, 1<<20)
	for i := range block {
		block[i] = byte(i * 13)
	}
	for i := 0; i < 1024; i++ {
		_, err := f.Write(block)
		must(err)
	}
	f.Close()
	must(exec.Command(cli, "encrypt", "-r", rcpt.String(), "-o", in+".age", in).Run())
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	must(err)
	defer devnull.Close()
	times := map[string][]float64{}
	timeIt := func(name string, f func() error) {
		t := time.Now()
		must(f())
		times[name] = append(times[name], time.Since(t).Seconds())
	}
	for r := 0; r < runs; r++ {
		timeIt("encrypt: sli CLI", func() error {
			c := exec.Command(cli, "encrypt", "-r", rcpt.String(), in)
			c.Stdout = devnull
			return c.Run()
		})
		timeIt("encrypt: Go Encrypt", func() error {
			src, err := os.Open(in)
			if err != nil {
				return err
			}
			defer src.Close()
			w, err := sli.Encrypt(devnull, []*sli.Recipient{rcpt}, &sli.AgeOptions{Parallel: true})
			if err != nil {
				return err
			}
			if _, err := io.Copy(w, src); err != nil {
				return err
			}
			return w.Close()
		})
		timeIt("decrypt: sli CLI", func() error {
			c := exec.Command(cli, "decrypt", "-i", filepath.Join(d, "id"), in+".age")
			c.Stdout = devnull
			return c.Run()
		})
		timeIt("decrypt: Go Decrypt", func() error {
			src, err := os.Open(in + ".age")
			if err != nil {
				return err
			}
			defer src.Close()
			r, err := sli.Decrypt(src, []*sli.Identity{me}, &sli.AgeOptions{Parallel: true})
			if err != nil {
				return err
			}
			_, err = io.Copy(devnull, r)
			return err
		})
	}
	fmt.Printf("\n1 GiB of age, medians of %d rounds (spread min–max)\n\n", runs)
	fmt.Println("| what | seconds | MB/s | vs the CLI |")
	fmt.Println("|---|---|---|---|")
	for _, k := range []string{"encrypt: sli CLI", "encrypt: Go Encrypt", "decrypt: sli CLI", "decrypt: Go Decrypt"} {
		m, lo, hi := median(times[k])
		cli, _, _ := median(times[strings.SplitN(k, ":", 2)[0]+": sli CLI"])
		fmt.Printf("| %s | %.2f (%.2f–%.2f) | %.0f | %.2f× |\n", k, m, lo, hi, float64(1<<30)/m/1e6, cli/m)
	}
}
