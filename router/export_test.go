package router

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/archive"
)

// TestOwnerExport: an owner downloads the organization's archive, which
// verifies and holds its rows and no one else's; a member gets 403; an
// export while another runs, and one past export.per_day, get 429.
func TestOwnerExport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "exporter", tenancy.PlanPro)
	other := b.org(t, "bystander", tenancy.PlanPro)
	b.create(t, o.token, "/api/agents", map[string]string{"name": "mine"})
	b.create(t, other.token, "/api/agents", map[string]string{"name": "theirs"})

	download := func(token string) (int, []byte, string) {
		req := httptest.NewRequest("GET", "/api/organization/export", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := b.app.Test(req, -1)
		require.NoError(t, err)
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.StatusCode, raw, res.Header.Get("Content-Disposition")
	}
	status, raw, disposition := download(o.token)
	require.Equal(t, 200, status, string(raw))
	require.Contains(t, disposition, "exporter-")
	m, err := archive.Verify(bytes.NewReader(raw))
	require.NoError(t, err, "the streamed archive verifies")
	require.Equal(t, o.ID, m.Organization.ID)
	require.Nil(t, m.Users, "no users in an owner's export")
	rd, err := archive.Open(bytes.NewReader(raw))
	require.NoError(t, err)
	var all bytes.Buffer
	for {
		_, data, err := rd.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		_, err = io.Copy(&all, data)
		require.NoError(t, err)
	}
	require.Contains(t, all.String(), "mine")
	require.NotContains(t, all.String(), "theirs", "another tenant's rows are never exported")

	// The download imports cleanly as a new organization, with its rows.
	imported, err := b.prov.ImportOrganization(context.Background(),
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		provisioner.ImportOrganization{Slug: "exporter-copy"})
	require.NoError(t, err)
	require.Equal(t, tenancy.StatusActive, imported.Status)
	copied, err := b.store.Tenant(context.Background(), imported.ID)
	require.NoError(t, err)
	agents, _, err := b.data.Agents.List(context.Background(), copied, tenancy.Page{})
	require.NoError(t, err)
	require.Len(t, agents, 1)
	require.Equal(t, "mine", agents[0].Name)

	member := b.member(t, o, "member")
	status, raw, _ = download(member)
	require.Equal(t, 403, status, string(raw))

	// Another export holding the organization's slot.
	_, _, err = b.svc.Throttle.Hit(context.Background(), "export:running:"+o.ID, time.Minute)
	require.NoError(t, err)
	status, raw, _ = download(o.token)
	require.Equal(t, 429, status, string(raw))
	require.NoError(t, b.svc.Throttle.Reset(context.Background(), "export:running:"+o.ID))

	for range 3 { // four a day: one was taken above
		status, _, _ = download(o.token)
		require.Equal(t, 200, status)
	}
	status, raw, _ = download(o.token)
	require.Equal(t, 429, status, "past export.per_day: %s", raw)
}
