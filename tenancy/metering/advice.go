package metering

import (
	"fmt"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
)

// AdviceRules are the thresholds of Advise. Zero fields take their
// defaults.
type AdviceRules struct {
	// Share is the fraction of its shared database's time or storage past
	// which a tenant is a noisy neighbour. Default 0.2.
	Share float64
	// IdleFloor is the database time per day under which a tenant is idle.
	// Default one minute a day.
	IdleFloor time.Duration
	// Window is the period the shares cover, which the floor is scaled
	// to. Default a day.
	Window time.Duration
}

// Defaults of AdviceRules.
const (
	DefaultAdviceShare = 0.2
	DefaultIdleFloor   = time.Minute
)

func (r AdviceRules) withDefaults() AdviceRules {
	if r.Share <= 0 {
		r.Share = DefaultAdviceShare
	}
	if r.IdleFloor <= 0 {
		r.IdleFloor = DefaultIdleFloor
	}
	if r.Window <= 0 {
		r.Window = 24 * time.Hour
	}
	return r
}

// floor is the idle floor over the whole window.
func (r AdviceRules) floor() time.Duration {
	return time.Duration(float64(r.IdleFloor) * r.Window.Hours() / 24)
}

// Actions of an Advice.
const (
	// ActionMove: move the organization to Advice.To.
	ActionMove = "move"
	// ActionReview: look at the placement; its plan keeps the organization
	// where it is.
	ActionReview = "review"
)

// Advice is a placement recommendation for one organization, with the
// figures behind it. It is advice only: nothing moves by itself.
type Advice struct {
	Share
	// Action is ActionMove or ActionReview.
	Action string `json:"action"`
	// To is where to move (tenancy.KindDedicated or tenancy.KindShared);
	// empty for a review.
	To string `json:"to,omitempty"`
	// Reason says which figure crossed which threshold, for people.
	Reason string `json:"reason"`
	// DBTimeShare and StorageShare are the organization's fractions of its
	// database's time and storage.
	DBTimeShare  float64 `json:"dbTimeShare"`
	StorageShare float64 `json:"storageShare"`
	// Threshold is the share past which a shared tenant is noisy; IdleFloor
	// the database time over the window under which a tenant is idle.
	Threshold float64       `json:"threshold"`
	IdleFloor time.Duration `json:"idleFloor"`
}

// Advise turns shares (Store.Shares over rules.Window) into placement
// advice, in the shares' order:
//   - a tenant of a shared database that holds other tenants too, whose
//     share of the database's time or storage exceeds rules.Share, is a
//     noisy neighbour: move it to a dedicated database. Its share of time
//     counts only if the tenant is not idle itself (its database time is
//     at least the idle floor): a large share of an idle database costs
//     the neighbours nothing;
//   - a tenant alone on a dedicated database whose database time stays
//     under the idle floor has a database it hardly uses: move it back to
//     the shared database, unless its plan wants a dedicated database
//     (enterprise), in which case the placement is for review.
func Advise(shares []Share, rules AdviceRules) []Advice {
	rules = rules.withDefaults()
	floor := rules.floor()
	tenants := map[string]int{}
	for _, s := range shares {
		tenants[s.DatabaseID]++
	}
	var out []Advice
	for _, s := range shares {
		a := Advice{Share: s, DBTimeShare: s.DBTimeShare(), StorageShare: s.StorageShare(), Threshold: rules.Share, IdleFloor: floor}
		switch s.Kind {
		case tenancy.KindShared:
			if tenants[s.DatabaseID] < 2 {
				continue // no neighbours to disturb
			}
			timeNoisy := a.DBTimeShare > rules.Share && s.Usage.DBTime >= floor
			storageNoisy := a.StorageShare > rules.Share
			if !timeNoisy && !storageNoisy {
				continue
			}
			a.Action, a.To = ActionMove, tenancy.KindDedicated
			switch {
			case timeNoisy && storageNoisy:
				a.Reason = fmt.Sprintf("%s of the database time and %s of the storage of shared database %s (threshold %s)",
					percent(a.DBTimeShare), percent(a.StorageShare), s.DatabaseName, percent(rules.Share))
			case timeNoisy:
				a.Reason = fmt.Sprintf("%s of the database time of shared database %s (threshold %s)",
					percent(a.DBTimeShare), s.DatabaseName, percent(rules.Share))
			default:
				a.Reason = fmt.Sprintf("%s of the storage of shared database %s (threshold %s)",
					percent(a.StorageShare), s.DatabaseName, percent(rules.Share))
			}
		case tenancy.KindDedicated:
			if tenants[s.DatabaseID] != 1 || s.Usage.DBTime >= floor {
				continue
			}
			a.Reason = fmt.Sprintf("database time %v over %s, under the idle floor of %v", s.Usage.DBTime.Round(time.Millisecond),
				windowText(rules.Window), floor.Round(time.Millisecond))
			if tenancy.Plan(s.Plan).Dedicated() {
				a.Action = ActionReview
				a.Reason += "; plan " + s.Plan + " keeps it dedicated"
			} else {
				a.Action, a.To = ActionMove, tenancy.KindShared
			}
		default:
			continue
		}
		out = append(out, a)
	}
	return out
}

func percent(f float64) string { return fmt.Sprintf("%.1f%%", f*100) }

// windowText writes a window in days when it is whole days ("7d").
func windowText(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}
