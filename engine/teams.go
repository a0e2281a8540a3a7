package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/teamflow/teamflow/storage"
)

// A team is a named group of members and projects with a status-update
// schedule in its timezone.

// TeamSchedule says when a team gets its update.
type TeamSchedule struct {
	Frequency string `json:"frequency" enum:"off,daily,weekly" doc:"daily: every working day (Monday to Friday); weekly: on Weekday"`
	Hour      int    `json:"hour" minimum:"0" maximum:"23" doc:"Hour of the day, in the team's timezone"`
	Weekday   int    `json:"weekday" minimum:"1" maximum:"7" doc:"ISO weekday for weekly updates (1 = Monday)"`
}

type teamRecord struct {
	ID        string       `json:"id"`
	Name      string       `json:"name"`
	Members   []string     `json:"members"`
	Projects  []string     `json:"projects"`
	Timezone  string       `json:"timezone"`
	Schedule  TeamSchedule `json:"schedule"`
	LastRun   int64        `json:"last_run,omitempty"` // the last scheduled time an update was written for
	CreatedBy string       `json:"created_by"`
	CreatedAt int64        `json:"created_at"`
	UpdatedAt int64        `json:"updated_at"`
}

// Team is the API view of a team.
type Team struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"`
	Members  []string     `json:"members"`
	Projects []string     `json:"projects"`
	Timezone string       `json:"timezone"`
	Schedule TeamSchedule `json:"schedule"`
	NextRun  *time.Time   `json:"next_run" doc:"When the next scheduled update is written"`
	Version  uint64       `json:"version"`
}

func kTeam(id string) storage.Key { return storage.K("team", id) }

func (t *teamRecord) cronSpec() string {
	switch t.Schedule.Frequency {
	case "daily":
		return fmt.Sprintf("CRON_TZ=%s 0 %d * * 1-5", t.Timezone, t.Schedule.Hour)
	case "weekly":
		return fmt.Sprintf("CRON_TZ=%s 0 %d * * %d", t.Timezone, t.Schedule.Hour, t.Schedule.Weekday%7)
	}
	return ""
}

// next is the team's next scheduled time after its last run (or creation).
func (t *teamRecord) next() (time.Time, bool) {
	spec := t.cronSpec()
	if spec == "" {
		return time.Time{}, false
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return time.Time{}, false
	}
	after := t.LastRun
	if after == 0 {
		after = t.CreatedAt
	}
	return sched.Next(time.UnixMilli(after)), true
}

func (t *teamRecord) view(version uint64) *Team {
	out := &Team{ID: t.ID, Name: t.Name, Members: nonNil(t.Members), Projects: nonNil(t.Projects), Timezone: t.Timezone, Schedule: t.Schedule, Version: version}
	if n, ok := t.next(); ok {
		out.NextRun = &n
	}
	return out
}

// TeamInput creates or changes a team; nil fields stay.
type TeamInput struct {
	Name     *string
	Members  *[]string
	Projects *[]string
	Timezone *string
	Schedule *TeamSchedule
	IfMatch  uint64
}

func (s *Service) checkTeam(v storage.View, p Principal, t *teamRecord) error {
	if _, err := validateName("name", t.Name, 100); err != nil {
		return err
	}
	if err := validateTimezone("timezone", t.Timezone); err != nil {
		return err
	}
	switch t.Schedule.Frequency {
	case "off", "daily", "weekly":
	default:
		return invalid("schedule.frequency", "invalid_schedule", "frequency is off, daily or weekly")
	}
	if t.Schedule.Hour < 0 || t.Schedule.Hour > 23 || (t.Schedule.Frequency == "weekly" && (t.Schedule.Weekday < 1 || t.Schedule.Weekday > 7)) {
		return invalid("schedule", "invalid_schedule", "hour is 0–23 and weekday 1–7")
	}
	if len(t.Members) > 500 || len(t.Projects) > 100 {
		return invalid("members", "too_many", "a team has at most 500 members and 100 projects")
	}
	for i, m := range t.Members {
		if !validID(m) {
			return invalid(fmt.Sprintf("members[%d]", i), "invalid_member", "not a member ID")
		}
		if _, err := v.Get(kUser(m)); err != nil {
			return invalid(fmt.Sprintf("members[%d]", i), "invalid_member", "no member %s in this workspace", m)
		}
	}
	for i, pid := range t.Projects {
		if _, _, err := s.visibleProject(v, p, pid); err != nil {
			return invalid(fmt.Sprintf("projects[%d]", i), "invalid_project", "no project %s you can see", pid)
		}
	}
	t.Members, t.Projects = dedupe(t.Members), dedupe(t.Projects)
	return nil
}

func dedupe(s []string) []string {
	out := []string{}
	for _, x := range s {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// CreateTeam makes a team (Owners and Admins).
func (s *Service) CreateTeam(ctx context.Context, p Principal, in TeamInput) (*Team, error) {
	if !p.Role.isAdmin() {
		return nil, forbidden("only Owners and Admins manage teams")
	}
	log, v := s.tenant(p.Tenant)
	ws, _, err := getRecord[workspaceRecord](v, kWorkspace)
	if err != nil {
		return nil, err
	}
	now := s.now().UnixMilli()
	t := &teamRecord{ID: newID(), Timezone: ws.Timezone, Schedule: TeamSchedule{Frequency: "off", Hour: 9, Weekday: 1},
		CreatedBy: p.actor(), CreatedAt: now, UpdatedAt: now}
	applyTeam(t, in)
	if err := s.checkTeam(v, p, t); err != nil {
		return nil, err
	}
	_, err = s.commit(ctx, log, func() (*change, error) {
		ch := s.newChange(p.Tenant, "team.create", p.actor())
		ch.put(kTeam(t.ID), t, 1)
		return ch, nil
	})
	if err != nil {
		return nil, err
	}
	return t.view(1), nil
}

func applyTeam(t *teamRecord, in TeamInput) {
	t.Name = deref(in.Name, t.Name)
	t.Members = deref(in.Members, t.Members)
	t.Projects = deref(in.Projects, t.Projects)
	t.Timezone = deref(in.Timezone, t.Timezone)
	t.Schedule = deref(in.Schedule, t.Schedule)
}

// visibleTeam loads a team the caller may see: Owners, Admins and its
// members.
func (s *Service) visibleTeam(v storage.View, p Principal, id string) (*teamRecord, error) {
	t, _, err := s.teamRecord(v, id)
	if err != nil {
		return nil, err
	}
	if !p.Role.isAdmin() && !slices.Contains(t.Members, p.UserID) {
		return nil, notFound("team")
	}
	return t, nil
}

func (s *Service) teamRecord(v storage.View, id string) (*teamRecord, storage.Record, error) {
	if !validID(id) {
		return nil, storage.Record{}, notFound("team")
	}
	t, rec, err := getRecord[teamRecord](v, kTeam(id))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, rec, notFound("team")
		}
		return nil, rec, err
	}
	return t, rec, nil
}

// ListTeams lists the teams the caller may see.
func (s *Service) ListTeams(ctx context.Context, p Principal, pg PageRequest) (*Page[Team], error) {
	_, v := s.tenant(p.Tenant)
	return scanPage(v, storage.K("team"), pg, false, func(_ storage.Key, r storage.Record) (*Team, error) {
		var t teamRecord
		if err := jsonDecode(r.Value, &t); err != nil {
			return nil, err
		}
		if !p.Role.isAdmin() && !slices.Contains(t.Members, p.UserID) {
			return nil, nil
		}
		return t.view(r.Version), nil
	})
}

// GetTeam returns one team.
func (s *Service) GetTeam(ctx context.Context, p Principal, id string) (*Team, error) {
	_, v := s.tenant(p.Tenant)
	t, err := s.visibleTeam(v, p, id)
	if err != nil {
		return nil, err
	}
	_, rec, _ := s.teamRecord(v, id)
	return t.view(rec.Version), nil
}

// UpdateTeam changes a team (Owners and Admins).
func (s *Service) UpdateTeam(ctx context.Context, p Principal, id string, in TeamInput) (*Team, error) {
	if !p.Role.isAdmin() {
		return nil, forbidden("only Owners and Admins manage teams")
	}
	log, v := s.tenant(p.Tenant)
	var out *Team
	_, err := s.commit(ctx, log, func() (*change, error) {
		t, rec, err := s.teamRecord(v, id)
		if err != nil {
			return nil, err
		}
		if in.IfMatch != 0 && in.IfMatch != rec.Version {
			return nil, errStale
		}
		applyTeam(t, in)
		if err := s.checkTeam(v, p, t); err != nil {
			return nil, err
		}
		if in.Schedule != nil || in.Timezone != nil {
			// A new schedule starts from now, not from runs it never had.
			t.LastRun = s.now().UnixMilli()
		}
		t.UpdatedAt = s.now().UnixMilli()
		ch := s.newChange(p.Tenant, "team.update", p.actor())
		ch.expect(kTeam(id), rec.Version)
		ch.put(kTeam(id), t, rec.Version+1)
		out = t.view(rec.Version + 1)
		return ch, nil
	})
	return out, err
}

// DeleteTeam removes a team (its updates stay with their projects).
func (s *Service) DeleteTeam(ctx context.Context, p Principal, id string) error {
	if !p.Role.isAdmin() {
		return forbidden("only Owners and Admins manage teams")
	}
	log, v := s.tenant(p.Tenant)
	_, err := s.commit(ctx, log, func() (*change, error) {
		_, rec, err := s.teamRecord(v, id)
		if err != nil {
			return nil, err
		}
		ch := s.newChange(p.Tenant, "team.delete", p.actor())
		ch.expect(kTeam(id), rec.Version)
		ch.del(kTeam(id))
		ch.delRange(kTeamUpdates(id))
		return ch, nil
	})
	return err
}

// ListTeamUpdates lists a team's updates, newest first.
func (s *Service) ListTeamUpdates(ctx context.Context, p Principal, id string, pg PageRequest) (*Page[StatusUpdate], error) {
	_, v := s.tenant(p.Tenant)
	if _, err := s.visibleTeam(v, p, id); err != nil {
		return nil, err
	}
	return s.updatePage(v, kTeamUpdates(id), pg)
}

// RunTeamSchedules writes every team's scheduled update that has come due
// (on the injected clock). The update's command also moves the team's last
// run under a precondition on the team's version, so a run repeated after a
// failover conflicts instead of writing a second update. Run it on the
// leader every few minutes.
func (s *Service) RunTeamSchedules(ctx context.Context) (int, error) {
	tenants, err := s.workspaceIDs()
	if err != nil {
		return 0, err
	}
	now := s.now()
	written := 0
	for _, tenant := range tenants {
		_, v := s.tenant(tenant)
		type due struct {
			t   *teamRecord
			rec storage.Record
			at  time.Time
		}
		var runs []due
		if err := v.Scan(storage.K("team"), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
			var t teamRecord
			if err := jsonDecode(r.Value, &t); err != nil {
				return err
			}
			if at, ok := t.next(); ok && !at.After(now) {
				runs = append(runs, due{&t, r, at})
			}
			return nil
		}); err != nil {
			return written, err
		}
		for _, d := range runs {
			var projects []*projectRecord
			for _, pid := range d.t.Projects {
				pr, _, err := getRecord[projectRecord](v, kProject(pid))
				if err == nil && pr.DeletedAt == 0 {
					projects = append(projects, pr)
				}
			}
			period := 24 * time.Hour
			if d.t.Schedule.Frequency == "weekly" {
				period = 7 * period
			}
			// Only the latest due time is written for: a node that was down
			// for three days writes today's update, not three.
			latest := d.at
			if sched, err := cron.ParseStandard(d.t.cronSpec()); err == nil {
				for n := sched.Next(latest); !n.After(now); n = sched.Next(n) {
					latest = n
				}
			}
			team := *d.t
			team.LastRun = latest.UnixMilli()
			marker := func(ch *change) {
				ch.expect(kTeam(team.ID), d.rec.Version)
				ch.put(kTeam(team.ID), team, d.rec.Version+1)
			}
			if len(projects) == 0 {
				_, err := s.commit(ctx, s.router.Workspace(tenant).Log, func() (*change, error) {
					ch := s.newChange(tenant, "team.schedule_skipped", "system")
					marker(ch)
					return ch, nil
				})
				if err != nil && !errors.Is(err, ErrConflict) {
					return written, err
				}
				continue
			}
			_, err := s.writeStatusUpdate(ctx, tenant, "system", projects, team.ID, latest.Add(-period), latest, nil, marker)
			var le *Error
			switch {
			case err == nil:
				written++
			case errors.As(err, &le) && (le.Code == "already_done" || le.Code == "plan_limit_reached"):
				// Another run wrote it, or the plan's quota is spent (the
				// next schedule tries again).
			default:
				return written, err
			}
		}
	}
	return written, nil
}
