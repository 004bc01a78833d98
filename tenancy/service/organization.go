package service

import (
	"context"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
)

// OrganizationView is an organization with its limits and this period's
// usage.
type OrganizationView struct {
	tenancy.Organization
	Limits tenancy.Limits `json:"limits"`
	Usage  struct {
		Agents       int       `json:"agents"`
		AgentMinutes int64     `json:"agentMinutes"`
		Tokens       int64     `json:"tokens"`
		PeriodStart  time.Time `json:"periodStart"`
		PeriodEnd    time.Time `json:"periodEnd"`
	} `json:"usage"`
}

// Organization returns the caller's organization with its limits and
// usage; any member may see it.
func (s *Service) Organization(ctx context.Context, c *Call) (OrganizationView, error) {
	var v OrganizationView
	if err := require(c, tenancy.RoleMember); err != nil {
		return v, err
	}
	usage, err := s.Catalog.Usage(ctx, c.Tenant.Organization.ID)
	if err != nil {
		return v, err
	}
	agents, err := s.Data.Agents.Count(ctx, c.Tenant)
	if err != nil {
		return v, err
	}
	v.Organization, v.Limits = c.Tenant.Organization, s.Limits(c.Tenant)
	v.Usage.Agents, v.Usage.AgentMinutes, v.Usage.Tokens = agents, usage.AgentMinutes, usage.Tokens
	v.Usage.PeriodStart, v.Usage.PeriodEnd = usage.PeriodStart, usage.PeriodEnd
	return v, nil
}

// BillingView is an organization's plan, payment state and period.
type BillingView struct {
	Plan         tenancy.Plan `json:"plan"`
	Status       string       `json:"status"` // active or past_due
	PastDueSince *time.Time   `json:"pastDueSince"`
	GraceEndsAt  *time.Time   `json:"graceEndsAt"`
	PeriodStart  time.Time    `json:"periodStart"`
	PeriodEnd    time.Time    `json:"periodEnd"`
}

// BillingState shows an owner the organization's plan, payment state and
// billing period.
func (s *Service) BillingState(ctx context.Context, c *Call) (BillingView, error) {
	if err := require(c, tenancy.RoleOwner); err != nil {
		return BillingView{}, err
	}
	usage, err := s.Catalog.Usage(ctx, c.Tenant.Organization.ID)
	if err != nil {
		return BillingView{}, err
	}
	org := c.Tenant.Organization
	v := BillingView{Plan: org.Plan, Status: "active", PeriodStart: usage.PeriodStart, PeriodEnd: usage.PeriodEnd}
	if since := org.PastDueSince; since != nil {
		ends := since.Add(s.Billing.GracePeriod)
		v.Status, v.PastDueSince, v.GraceEndsAt = "past_due", since, &ends
	}
	return v, nil
}
