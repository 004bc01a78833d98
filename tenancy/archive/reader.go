package archive

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/klauspost/compress/zstd"
)

// maxWindow bounds the zstd window a reader accepts, and so the memory a
// hostile archive can make it allocate. Export's encoder uses at most
// 8 MiB.
const maxWindow = 32 << 20

// errClosed is what a Reader returns after Close.
var errClosed = errors.New("archive: reader closed")

// Reader reads an archive and checks it as it goes (see the package
// documentation). Open reads the manifest (and users); Next gives each
// table's data in turn. Every check failure is ErrCorrupt (or
// ErrNewerFormat from Open); an error of the reader the archive comes from
// is returned as it is. Either sticks: every later call returns it.
type Reader struct {
	dec   *zstd.Decoder
	tr    *tar.Reader
	m     Manifest
	users []User
	next  int          // index in m.Tables of the next table
	cur   *tableReader // the table being read, if any
	err   error        // sticky: the first failure, io.EOF at the end, or errClosed
}

// Open starts reading the archive in r: it reads and checks the manifest,
// and users.json when there is one. Close the Reader when done.
func Open(r io.Reader) (*Reader, error) {
	// A synchronous decoder, without goroutines: decoding is not what
	// bounds a load, and a Reader abandoned without Close leaks nothing.
	dec, err := zstd.NewReader(newSealReader(r), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		return nil, fmt.Errorf("archive: zstd: %w", err)
	}
	rd := &Reader{dec: dec, tr: tar.NewReader(dec)}
	if err := rd.open(); err != nil {
		dec.Close()
		return nil, err
	}
	return rd, nil
}

// Verify reads the whole archive in r and checks it: format version,
// framing, every file's checksum, size and row count, no file missing,
// extra or out of order, nothing after the end. It returns the manifest
// of a sound archive.
func Verify(r io.Reader) (Manifest, error) {
	rd, err := Open(r)
	if err != nil {
		return Manifest{}, err
	}
	defer rd.Close()
	for {
		if _, _, err := rd.Next(); errors.Is(err, io.EOF) {
			return rd.Manifest(), nil
		} else if err != nil {
			return Manifest{}, err
		}
	}
}

// Manifest is the archive's manifest. Its checksums are only claims until
// Next has returned io.EOF.
func (r *Reader) Manifest() Manifest {
	m := r.m
	m.Tables = slices.Clone(m.Tables)
	return m
}

// Users are the users the archive holds; nil when it holds none.
func (r *Reader) Users() []User { return slices.Clone(r.users) }

// Next returns the next table of the manifest and a reader of its data
// file (COPY text format). The data reader returns an ErrCorrupt error
// instead of io.EOF when the file does not match the manifest, so a
// consumer that reads it to the end has checked it. Next first reads what
// is left of the previous table, checking it. After the last table it
// checks that the archive ends there, and returns io.EOF: only then is the
// whole archive known sound.
func (r *Reader) Next() (Table, io.Reader, error) {
	if r.err != nil {
		return Table{}, nil, r.err
	}
	if r.cur != nil {
		if _, err := io.Copy(io.Discard, r.cur); err != nil {
			return Table{}, nil, r.fail(err)
		}
		r.cur = nil
	}
	if r.next == len(r.m.Tables) {
		if err := r.end(); err != nil {
			return Table{}, nil, r.fail(err)
		}
		r.err = io.EOF
		return Table{}, nil, io.EOF
	}
	t := r.m.Tables[r.next]
	r.next++
	hdr, err := r.entry(t.File)
	if err != nil {
		return Table{}, nil, r.fail(err)
	}
	if hdr.Size != t.Bytes {
		return Table{}, nil, r.fail(corrupt("%s: %d bytes, the manifest says %d", t.File, hdr.Size, t.Bytes))
	}
	r.cur = &tableReader{r: r, t: t, d: newDigest()}
	return t, r.cur, nil
}

// Close releases the decoder. It does not close the underlying reader.
func (r *Reader) Close() error {
	if r.err == nil || errors.Is(r.err, io.EOF) {
		r.err = errClosed
	}
	r.dec.Close()
	return nil
}

// fail records err as the Reader's failure, unless one is recorded.
func (r *Reader) fail(err error) error {
	if r.err == nil {
		r.err = err
	}
	return r.err
}

// open reads the manifest and users.json.
func (r *Reader) open() error {
	raw, err := r.whole(manifestFile, maxManifestBytes)
	if err != nil {
		return err
	}
	// The version first, leniently: a newer format may have fields this
	// one does not know, and deserves ErrNewerFormat rather than
	// ErrCorrupt.
	var head struct {
		Format        string `json:"format"`
		FormatVersion int    `json:"formatVersion"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return corrupt("%s: %v", manifestFile, err)
	}
	if err := checkFormat(head.Format, head.FormatVersion); err != nil {
		return err
	}
	if err := strictJSON(raw, &r.m); err != nil {
		return corrupt("%s: %v", manifestFile, err)
	}
	if err := r.m.check(); err != nil {
		return err
	}
	if r.m.Users == nil {
		return nil
	}
	raw, err = r.whole(usersFile, maxUsersBytes)
	if err != nil {
		return err
	}
	d := newDigest()
	d.Write(raw)
	if d.bytes != r.m.Users.Bytes || d.sum() != r.m.Users.SHA256 {
		return corrupt("%s: SHA-256 or size differs from the manifest's", usersFile)
	}
	if err := strictJSON(raw, &r.users); err != nil || r.users == nil || len(r.users) != r.m.Users.Count {
		return corrupt("%s: not the manifest's %d users", usersFile, r.m.Users.Count)
	}
	return nil
}

// whole reads the next file, which must be name and at most limit bytes.
func (r *Reader) whole(name string, limit int64) ([]byte, error) {
	hdr, err := r.entry(name)
	if err != nil {
		return nil, err
	}
	if hdr.Size > limit {
		return nil, corrupt("%s: %d bytes, more than the %d a reader accepts", name, hdr.Size, limit)
	}
	raw, err := io.ReadAll(r.tr)
	if err != nil {
		return nil, damaged(name, err)
	}
	return raw, nil
}

// entry reads the next tar header, which must be the regular file name.
func (r *Reader) entry(name string) (*tar.Header, error) {
	hdr, err := r.tr.Next()
	switch {
	case errors.Is(err, io.EOF):
		return nil, corrupt("the archive ends before %s (truncated)", name)
	case err != nil:
		return nil, damaged(name, err)
	case hdr.Name != name:
		return nil, corrupt("found %q where %s was expected", hdr.Name, name)
	case hdr.Typeflag != tar.TypeReg || hdr.Size < 0:
		return nil, corrupt("%s: not a regular file", name)
	}
	return hdr, nil
}

// end checks that nothing follows the last table: the tar ends, and what
// remains of the zstd stream is the tar's zero padding, then the end of
// the frame, whose checksum the decoder verifies on the way.
func (r *Reader) end() error {
	hdr, err := r.tr.Next()
	switch {
	case err == nil:
		return corrupt("unexpected file %q after the last table", hdr.Name)
	case !errors.Is(err, io.EOF):
		return damaged("the end of the archive", err)
	}
	var z zeros
	if _, err := io.Copy(&z, r.dec); err != nil {
		return damaged("the end of the archive", err)
	}
	if z.nonZero {
		return corrupt("data after the end of the tar")
	}
	return nil
}

// damaged turns a read error in file name into ErrCorrupt, unless it is
// already one, or an error of the reader the archive comes from.
func damaged(name string, err error) error {
	var src *sourceError
	switch {
	case errors.Is(err, ErrCorrupt), errors.As(err, &src):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF):
		return corrupt("%s: the archive ends early (truncated)", name)
	}
	return corrupt("%s: %v", name, err)
}

// strictJSON decodes one JSON value with no unknown field and nothing after.
func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

// tableReader reads one data file and checks it against its manifest
// entry when it ends.
type tableReader struct {
	r   *Reader
	t   Table
	d   *digest
	err error
}

func (tr *tableReader) Read(p []byte) (int, error) {
	if tr.err != nil {
		return 0, tr.err
	}
	if tr.r.err != nil { // closed, or failed elsewhere
		tr.err = tr.r.err
		return 0, tr.err
	}
	n, err := tr.r.tr.Read(p)
	tr.d.Write(p[:n])
	switch {
	case errors.Is(err, io.EOF):
		err = tr.check()
		if err == nil {
			err = io.EOF
		}
	case err != nil:
		err = damaged(tr.t.File, err)
	}
	if err != nil {
		tr.err = err
		if !errors.Is(err, io.EOF) {
			tr.r.fail(err)
		}
	}
	return n, err
}

// check compares what was read with the manifest's entry.
func (tr *tableReader) check() error {
	switch d, t := tr.d, tr.t; {
	case d.bytes != t.Bytes:
		return corrupt("%s: %d bytes, the manifest says %d", t.File, d.bytes, t.Bytes)
	case d.sum() != t.SHA256:
		return corrupt("%s: SHA-256 differs from the manifest's", t.File)
	case d.lines != t.Rows || !d.whole():
		return corrupt("%s: %d rows, the manifest says %d", t.File, d.lines, t.Rows)
	}
	return nil
}

// zeros is a writer that notes whether anything but zero bytes went by.
type zeros struct{ nonZero bool }

func (z *zeros) Write(p []byte) (int, error) {
	for _, b := range p {
		if b != 0 {
			z.nonZero = true
			break
		}
	}
	return len(p), nil
}
