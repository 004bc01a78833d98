package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"io"
)

// The seal ends every archive: a zstd skippable frame (which zstd tools
// skip) holding the SHA-256 of every byte of the file before it. The
// per-file checksums and zstd's own catch any change of the archive's
// content; the seal also catches the changes that leave the content as it
// was (zstd's entropy coding has slack: a few bits of a file can flip and
// decode to the same bytes), so that a file with any byte changed is
// refused, as an operator expects.
const (
	sealMagic = 0x184D2A54 // a skippable frame's magic: 0x184D2A5?
	sealTag   = "TGA1"
	sealSize  = len(sealTag) + sha256.Size
	sealLen   = 8 + sealSize // magic, frame size, content
)

// seal returns the seal of a file whose bytes before it hash to sum.
func seal(sum []byte) []byte {
	b := make([]byte, 0, sealLen)
	b = binary.LittleEndian.AppendUint32(b, sealMagic)
	b = binary.LittleEndian.AppendUint32(b, uint32(sealSize))
	b = append(b, sealTag...)
	return append(b, sum...)
}

// sealReader passes on an archive's bytes but the seal, hashing them, and
// checks the seal when the archive ends: it returns ErrCorrupt instead of
// io.EOF when the seal is missing or does not match. Errors of the
// underlying reader come wrapped in sourceError.
type sealReader struct {
	r          io.Reader
	h          hash.Hash
	buf        []byte
	start, end int // buf[start:end] was read and not passed on yet
	eof        bool
	err        error
}

func newSealReader(r io.Reader) *sealReader {
	return &sealReader{r: r, h: sha256.New(), buf: make([]byte, 64<<10)}
}

func (s *sealReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	// The last sealLen bytes read may be the seal: hold them back.
	for s.end-s.start <= sealLen && !s.eof {
		if s.start > 0 {
			s.end = copy(s.buf, s.buf[s.start:s.end])
			s.start = 0
		}
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if errors.Is(err, io.EOF) {
			s.eof = true
		} else if err != nil {
			s.err = &sourceError{err}
			return 0, s.err
		}
	}
	if s.end-s.start > sealLen {
		n := copy(p, s.buf[s.start:s.end-sealLen])
		s.h.Write(p[:n])
		s.start += n
		return n, nil
	}
	if s.err = s.check(s.buf[s.start:s.end]); s.err == nil {
		s.err = io.EOF
	}
	return 0, s.err
}

func (s *sealReader) check(tail []byte) error {
	if len(tail) < sealLen || !bytes.Equal(tail[:8+len(sealTag)], seal(nil)[:8+len(sealTag)]) {
		return corrupt("the archive does not end with its seal: it was truncated, or something was appended")
	}
	if !bytes.Equal(tail[8+len(sealTag):], s.h.Sum(nil)) {
		return corrupt("the archive's seal does not match its bytes: it was altered")
	}
	return nil
}

// sourceError is an error of the reader an archive is read from (a file,
// a request body), which says nothing of the archive itself.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "archive: read: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }
