package sli

/*
#include "sli_go.h"
*/
import "C"

import (
	"bytes"
	"io"
	"os"
	"runtime"
	"sync"
)

// Recipient is whom an age file is encrypted to: an X25519 key ("age1…"), an SSH key
// (ssh-ed25519, ssh-rsa) or a passphrase. Immutable and safe for concurrent use.
type Recipient struct {
	mu sync.RWMutex
	r  *C.sli_age_recipient
}

// Identity is what opens an age file: an X25519 secret key ("AGE-SECRET-KEY-1…"), an SSH private
// key, or a passphrase. Immutable and safe for concurrent use.
type Identity struct {
	mu sync.RWMutex
	id *C.sli_age_identity
}

func newRecipient(r *C.sli_age_recipient) *Recipient {
	x := &Recipient{r: r}
	runtime.SetFinalizer(x, (*Recipient).Close)
	return x
}

func newIdentity(id *C.sli_age_identity) *Identity {
	x := &Identity{id: id}
	runtime.SetFinalizer(x, (*Identity).Close)
	return x
}

// ParseRecipient reads an "age1…" string or an OpenSSH public-key line ("ssh-ed25519 AAAA…
// comment", "ssh-rsa …"). Malformed is ErrInval, another SSH key type ErrUnsupported, RSA below
// 2048 bits ErrWeakKey.
func ParseRecipient(s string) (*Recipient, error) {
	var r *C.sli_age_recipient
	var em *C.char
	b := cstr(bytes.TrimSpace([]byte(s)))
	if err := check(C.go_age_recipient_parse(&em, &r, cbytes(b)), em); err != nil {
		return nil, err
	}
	return newRecipient(r), nil
}

// PassphraseRecipient makes a passphrase recipient (scrypt with work factor 2^log2N; 0 means
// 18). A file encrypted to a passphrase can have no other recipient.
func PassphraseRecipient(passphrase []byte, log2N int) (*Recipient, error) {
	var r *C.sli_age_recipient
	var em *C.char
	b := cstr(passphrase)
	defer wipe(b)
	if err := check(C.go_age_recipient_scrypt(&em, &r, cbytes(b), C.int(log2N)), em); err != nil {
		return nil, err
	}
	return newRecipient(r), nil
}

// RecipientFromKey makes the recipient of key k (public or private): X25519 as "age1…", Ed25519
// and RSA as age's SSH recipient types.
func RecipientFromKey(k *Key) (*Recipient, error) {
	var r *C.sli_age_recipient
	err := k.use(func(c *C.sli_key) error {
		var em *C.char
		return check(C.go_age_recipient_from_key(&em, &r, c), em)
	})
	if err != nil {
		return nil, err
	}
	return newRecipient(r), nil
}

// String returns the recipient as text: "age1…" or an OpenSSH line without comment; "" for a
// passphrase recipient or after Close.
func (r *Recipient) String() string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.r == nil {
		return ""
	}
	buf := make([]byte, 3000)
	var em *C.char
	if check(C.go_age_recipient_encode(&em, r.r, cbytes(buf), C.size_t(len(buf))), em) != nil {
		return ""
	}
	return string(buf[:bytes.IndexByte(buf, 0)])
}

// Close frees the recipient; encryptors made with it keep their own copy.
func (r *Recipient) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.r != nil {
		C.sli_age_recipient_free(r.r)
		r.r = nil
		runtime.SetFinalizer(r, nil)
	}
	return nil
}

// GenerateIdentity makes a new X25519 identity.
func GenerateIdentity() (*Identity, error) {
	var id *C.sli_age_identity
	var em *C.char
	if err := check(C.go_age_identity_generate(&em, &id), em); err != nil {
		return nil, err
	}
	return newIdentity(id), nil
}

// ParseIdentity reads an "AGE-SECRET-KEY-1…" string (ErrInval if malformed).
func ParseIdentity(s string) (*Identity, error) {
	var id *C.sli_age_identity
	var em *C.char
	b := cstr(bytes.TrimSpace([]byte(s)))
	defer wipe(b)
	if err := check(C.go_age_identity_parse(&em, &id, cbytes(b)), em); err != nil {
		return nil, err
	}
	return newIdentity(id), nil
}

// PassphraseIdentity makes an identity that opens files encrypted to passphrase.
func PassphraseIdentity(passphrase []byte) (*Identity, error) {
	var id *C.sli_age_identity
	var em *C.char
	b := cstr(passphrase)
	defer wipe(b)
	if err := check(C.go_age_identity_scrypt(&em, &id, cbytes(b)), em); err != nil {
		return nil, err
	}
	return newIdentity(id), nil
}

// IdentityFromKey makes an identity from private key k: an X25519 key is a native age identity;
// an Ed25519 or RSA key (an OpenSSH key read with LoadKey, say) opens the files age encrypts to
// its SSH recipient.
func IdentityFromKey(k *Key) (*Identity, error) {
	var id *C.sli_age_identity
	err := k.use(func(c *C.sli_key) error {
		var em *C.char
		return check(C.go_age_identity_from_key(&em, &id, c), em)
	})
	if err != nil {
		return nil, err
	}
	return newIdentity(id), nil
}

// Recipient returns the recipient of the identity ("age1…", or the SSH public key); ErrInval for
// a passphrase identity.
func (id *Identity) Recipient() (*Recipient, error) {
	id.mu.RLock()
	defer id.mu.RUnlock()
	if id.id == nil {
		return nil, errClosed("identity")
	}
	var r *C.sli_age_recipient
	var em *C.char
	if err := check(C.go_age_identity_recipient(&em, id.id, &r), em); err != nil {
		return nil, err
	}
	return newRecipient(r), nil
}

// Encode returns the secret "AGE-SECRET-KEY-1…" string of an X25519 identity (ErrInval for the
// others). Identity has no String method, so that a secret is never printed by accident.
func (id *Identity) Encode() (string, error) {
	id.mu.RLock()
	defer id.mu.RUnlock()
	if id.id == nil {
		return "", errClosed("identity")
	}
	buf := make([]byte, 128)
	defer wipe(buf)
	var em *C.char
	if err := check(C.go_age_identity_encode(&em, id.id, cbytes(buf), C.size_t(len(buf))), em); err != nil {
		return "", err
	}
	return string(buf[:bytes.IndexByte(buf, 0)]), nil
}

// Close frees the identity, wiping its key; decryptors made with it keep their own copy.
func (id *Identity) Close() error {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.id != nil {
		C.sli_age_identity_free(id.id)
		id.id = nil
		runtime.SetFinalizer(id, nil)
	}
	return nil
}

// AgeOptions are the options of Encrypt and Decrypt; nil means all false.
type AgeOptions struct {
	// Armor makes Encrypt write ASCII armor ("-----BEGIN AGE ENCRYPTED FILE-----"). Decrypt
	// detects armor by itself.
	Armor bool
	// AllOrNothing makes Decrypt release nothing before the whole file is authenticated: the
	// first Read decrypts it all into a spool (memory up to 8 MiB, then an unlinked temporary
	// file) and fails if any of it is not authentic.
	AllOrNothing bool
	// Parallel seals or opens the chunks of each 1 MiB step on two threads (SLI_AGE_PARALLEL),
	// as the sli command does; the file format is the same.
	Parallel bool
}

const ageStep = 1 << 20 // bytes given to one _update call: 16 chunks, enough for Parallel

// ageWriter is the io.WriteCloser of Encrypt.
type ageWriter struct {
	mu  sync.Mutex
	e   *C.sli_age_enc
	dst io.Writer
	out []byte
	err error // sticky: the first failure
}

// Encrypt returns a writer whose input goes to w as an age file encrypted to recipients; Close
// writes the last chunk (and the armor's end) and must be called. It does not close w. Memory
// stays constant whatever the size: about 2 MiB.
func Encrypt(w io.Writer, recipients []*Recipient, opts *AgeOptions) (io.WriteCloser, error) {
	if opts == nil {
		opts = &AgeOptions{}
	}
	var flags C.uint32_t
	if opts.Armor {
		flags |= C.SLI_AGE_ARMOR
	}
	if opts.Parallel {
		flags |= C.SLI_AGE_PARALLEL
	}
	rs := make([]*C.sli_age_recipient, len(recipients)+1)
	for i, r := range recipients {
		if r == nil {
			return nil, newError(int(C.SLI_E_INVAL), "a nil recipient")
		}
		r.mu.RLock()
		defer r.mu.RUnlock()
		if r.r == nil {
			return nil, errClosed("recipient")
		}
		rs[i] = r.r
	}
	var e *C.sli_age_enc
	var em *C.char
	if err := check(C.go_age_enc_new(&em, &e, &rs[0], C.size_t(len(recipients)), flags), em); err != nil {
		return nil, err
	}
	aw := &ageWriter{e: e, dst: w}
	runtime.SetFinalizer(aw, (*ageWriter).free)
	return aw, nil
}

func (a *ageWriter) fail(rc C.int) error {
	return newError(int(rc), C.GoString(C.sli_age_enc_error(a.e)))
}

func (a *ageWriter) grow(n int) []byte {
	if len(a.out) < n {
		a.out = make([]byte, n)
	}
	return a.out[:n]
}

// write encrypts p; a.mu is held.
func (a *ageWriter) write(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	if a.e == nil {
		return 0, errClosed("age encryptor")
	}
	done := 0
	for done < len(p) {
		piece := p[done:]
		if len(piece) > ageStep {
			piece = piece[:ageStep]
		}
		out := a.grow(int(C.sli_age_enc_update_bound(a.e, C.size_t(len(piece)))))
		n := C.size_t(len(out))
		if rc := C.sli_age_enc_update(a.e, bptr(out), &n, bptr(piece), C.size_t(len(piece))); rc < 0 {
			a.err = a.fail(rc)
			return done, a.err
		}
		if n > 0 {
			if _, err := a.dst.Write(out[:n]); err != nil {
				a.err = err
				return done, err
			}
		}
		done += len(piece)
	}
	return done, nil
}

// Write encrypts p, writing the chunks it completes.
func (a *ageWriter) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.write(p)
}

// ReadFrom encrypts all of r (io.Copy uses it), reading 1 MiB at a time.
func (a *ageWriter) ReadFrom(r io.Reader) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	buf := make([]byte, ageStep)
	var total int64
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			m, werr := a.write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close writes the last chunk and frees the encryptor (wiping its keys). It does not close the
// destination. A second Close returns ErrClosed.
func (a *ageWriter) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.e == nil {
		return errClosed("age encryptor")
	}
	defer a.free()
	if a.err != nil {
		return a.err
	}
	out := a.grow(int(C.sli_age_enc_final_bound(a.e)))
	n := C.size_t(len(out))
	if rc := C.sli_age_enc_final(a.e, bptr(out), &n); rc < 0 {
		a.err = a.fail(rc)
		return a.err
	}
	if _, err := a.dst.Write(out[:n]); err != nil {
		a.err = err
		return err
	}
	return nil
}

func (a *ageWriter) free() {
	if a.e != nil {
		C.sli_age_enc_free(a.e)
		a.e = nil
		runtime.SetFinalizer(a, nil)
	}
}

// ageReader is the reader of Decrypt.
type ageReader struct {
	mu     sync.Mutex
	d      *C.sli_age_dec
	src    io.Reader
	in     []byte // ciphertext of one step
	out    []byte // plaintext of one step (wiped when done)
	pend   []byte // what of out is not read yet
	srcEOF bool
	err    error // sticky: io.EOF at the authenticated end, or the failure
	whole  bool
	spool  *spool
	// wholeDone: the spool of AllOrNothing was read to its end (or Close came)
	wholeDone bool
}

// Decrypt returns a reader of the plaintext of the age file read from r, opened with one of
// identities. Each 64 KiB chunk is released once it is authenticated; a changed, cut or extended
// file is an error (ErrPayload, …) at the Read that reaches it, and io.EOF comes only at the
// authenticated end. With opts.AllOrNothing nothing is released before the end is authenticated.
// Memory stays constant whatever the size (about 2 MiB). The reader also implements io.Closer
// and io.WriterTo; its C side is freed at the end, at an error, at Close, or when it is
// garbage-collected.
func Decrypt(r io.Reader, identities []*Identity, opts *AgeOptions) (io.Reader, error) {
	if opts == nil {
		opts = &AgeOptions{}
	}
	var flags C.uint32_t
	if opts.Parallel {
		flags |= C.SLI_AGE_PARALLEL
	}
	ids := make([]*C.sli_age_identity, len(identities)+1)
	for i, id := range identities {
		if id == nil {
			return nil, newError(int(C.SLI_E_INVAL), "a nil identity")
		}
		id.mu.RLock()
		defer id.mu.RUnlock()
		if id.id == nil {
			return nil, errClosed("identity")
		}
		ids[i] = id.id
	}
	var d *C.sli_age_dec
	var em *C.char
	if err := check(C.go_age_dec_new(&em, &d, &ids[0], C.size_t(len(identities)), flags), em); err != nil {
		return nil, err
	}
	ar := &ageReader{d: d, src: r, whole: opts.AllOrNothing}
	runtime.SetFinalizer(ar, (*ageReader).finalize)
	return ar, nil
}

func (a *ageReader) fail(rc C.int) error {
	return newError(int(rc), C.GoString(C.sli_age_dec_error(a.d)))
}

// step decrypts the next piece into a.pend; at the authenticated end it sets a.err = io.EOF
// (a.pend may then hold the last chunk). a.mu is held.
func (a *ageReader) step() {
	if a.d == nil {
		a.err = errClosed("age decryptor")
		return
	}
	if a.in == nil {
		a.in = make([]byte, ageStep)
	}
	for len(a.pend) == 0 && a.err == nil {
		if a.srcEOF {
			out := a.grow(C.SLI_AGE_CHUNK_BYTES)
			n := C.size_t(len(out))
			if rc := C.sli_age_dec_final(a.d, bptr(out), &n); rc < 0 {
				a.err = a.fail(rc)
				a.free()
				return
			}
			a.pend = out[:n]
			a.err = io.EOF
			C.sli_age_dec_free(a.d) // the last chunk's plaintext stays in a.out until read
			a.d = nil
			return
		}
		n, rerr := a.src.Read(a.in)
		if n > 0 {
			out := a.grow(int(C.sli_age_dec_update_bound(a.d, C.size_t(n))))
			m := C.size_t(len(out))
			if rc := C.sli_age_dec_update(a.d, bptr(out), &m, bptr(a.in[:n]), C.size_t(n)); rc < 0 {
				a.err = a.fail(rc)
				a.free()
				return
			}
			a.pend = out[:m]
		}
		if rerr == io.EOF {
			a.srcEOF = true
		} else if rerr != nil {
			a.err = rerr
			a.free()
			return
		}
	}
}

func (a *ageReader) grow(n int) []byte {
	if len(a.out) < n {
		wipe(a.out)
		a.out = make([]byte, n)
	}
	return a.out[:n]
}

// Read reads plaintext.
func (a *ageReader) Read(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.whole {
		return a.readWhole(p)
	}
	if len(a.pend) == 0 {
		if a.err != nil {
			return 0, a.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		a.step()
	}
	n := copy(p, a.pend)
	a.pend = a.pend[n:]
	if len(a.pend) == 0 && a.err != nil {
		if a.err == io.EOF {
			a.free()
		}
		return n, a.err
	}
	return n, nil
}

// WriteTo writes the plaintext to w without an extra copy (io.Copy uses it).
func (a *ageReader) WriteTo(w io.Writer) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.whole {
		if err := a.spoolAll(); err != nil {
			return 0, err
		}
		if a.wholeDone {
			return 0, nil
		}
		n, err := a.spool.writeTo(w)
		if err == nil {
			a.spool.discard()
			a.spool = nil
			a.wholeDone = true
		}
		return n, err
	}
	var total int64
	for {
		if len(a.pend) == 0 {
			if a.err != nil {
				break
			}
			a.step()
		}
		if len(a.pend) > 0 {
			n, err := w.Write(a.pend)
			total += int64(n)
			a.pend = a.pend[n:]
			if err != nil {
				return total, err
			}
		}
	}
	err := a.err
	if err == io.EOF {
		a.free()
		return total, nil
	}
	return total, err
}

// spoolAll decrypts the whole file into a.spool; a failure discards it. a.mu is held.
func (a *ageReader) spoolAll() error {
	if a.spool != nil || a.wholeDone {
		return nil
	}
	if a.err != nil && a.err != io.EOF {
		return a.err
	}
	s := &spool{}
	for {
		if len(a.pend) == 0 {
			if a.err != nil {
				break
			}
			a.step()
		}
		if len(a.pend) > 0 {
			if err := s.write(a.pend); err != nil {
				s.discard()
				a.err = err
				a.free()
				return err
			}
			a.pend = a.pend[:0]
		}
	}
	if a.err != io.EOF {
		s.discard()
		return a.err
	}
	a.spool = s
	return s.rewind()
}

func (a *ageReader) readWhole(p []byte) (int, error) {
	if err := a.spoolAll(); err != nil {
		return 0, err
	}
	if a.wholeDone {
		return 0, a.err
	}
	n, err := a.spool.Read(p)
	if err == io.EOF {
		a.spool.discard()
		a.spool = nil
		a.wholeDone = true
	}
	return n, err
}

// Close frees the decryptor (wiping its keys and buffered plaintext) and any spool. Reads after
// it return what they returned before: io.EOF after the end, else ErrClosed.
func (a *ageReader) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.finalize()
	a.wholeDone = true
	if a.err == nil {
		a.err = errClosed("age decryptor")
	}
	return nil
}

// free releases the C decryptor (wiping its keys and buffers) and wipes the plaintext buffer
// once nothing in it is left to read. a.mu is held (or a is unreachable).
func (a *ageReader) free() {
	if a.d != nil {
		C.sli_age_dec_free(a.d)
		a.d = nil
	}
	if len(a.pend) == 0 {
		wipe(a.out)
	}
}

// finalize is free plus the spool; for Close and the finalizer.
func (a *ageReader) finalize() {
	a.pend = nil
	a.free()
	if a.spool != nil {
		a.spool.discard()
		a.spool = nil
	}
}

// spool holds a whole plaintext for AllOrNothing: memory up to spoolMem, then an unlinked
// temporary file.
type spool struct {
	mem []byte
	f   *os.File
	rd  io.Reader
}

const spoolMem = 8 << 20

func (s *spool) write(p []byte) error {
	if s.f == nil && len(s.mem)+len(p) <= spoolMem {
		s.mem = append(s.mem, p...)
		return nil
	}
	if s.f == nil {
		f, err := os.CreateTemp("", "sli-age-spool-*")
		if err != nil {
			return err
		}
		_ = os.Remove(f.Name()) // unlinked: gone when closed, whatever happens
		s.f = f
		if _, err := f.Write(s.mem); err != nil {
			return err
		}
		wipe(s.mem)
		s.mem = nil
	}
	_, err := s.f.Write(p)
	return err
}

func (s *spool) rewind() error {
	if s.f == nil {
		s.rd = bytes.NewReader(s.mem)
		return nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	s.rd = s.f
	return nil
}

// Read reads the spooled plaintext.
func (s *spool) Read(p []byte) (int, error) { return s.rd.Read(p) }

func (s *spool) writeTo(w io.Writer) (int64, error) { return io.Copy(w, s.rd) }

func (s *spool) discard() {
	wipe(s.mem)
	s.mem = nil
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
}
