package router

import (
	"fmt"
	"os"

	"github.com/gofiber/fiber/v2"
)

// handleExport streams the organization's archive to its owner. The
// archive is written to a temporary file first, so that a failure is an
// error answer rather than a cut-off download; the file is removed once
// sent (or when the client goes).
func (s *server) handleExport(c *fiber.Ctx) error {
	tmp, err := os.CreateTemp("", "tenantgate-export-*")
	if err != nil {
		return err
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	cl := call(c)
	m, err := s.Service.ExportOrganization(c.UserContext(), cl, tmp)
	if err == nil {
		_, err = tmp.Seek(0, 0)
	}
	var size int64
	if err == nil {
		var st os.FileInfo
		if st, err = tmp.Stat(); err == nil {
			size = st.Size()
		}
	}
	if err != nil {
		cleanup()
		return err
	}
	c.Set(fiber.HeaderContentType, "application/zstd")
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-%s.tgarchive"`,
		m.Organization.Slug, m.ExportedAt.UTC().Format("20060102T150405Z")))
	return c.SendStream(removeOnClose{File: tmp, cleanup: cleanup}, int(size))
}

// removeOnClose is the archive's file, deleted when fasthttp closes the
// stream after sending it.
type removeOnClose struct {
	*os.File
	cleanup func()
}

func (r removeOnClose) Close() error { r.cleanup(); return nil }
