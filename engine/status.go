package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/teamflow/teamflow/licensing"
	"github.com/teamflow/teamflow/storage"
)

// Status updates are written from the work itself: facts gathered from the
// activity and the tasks, turned into text by the model (checked against the
// facts) or by the built-in writer. The model runs before the command is
// proposed; its checked text enters the log as data (DESIGN rule 4).

type statusUpdateRecord struct {
	ID          string          `json:"id"`
	ProjectIDs  []string        `json:"project_ids"`
	TeamID      string          `json:"team_id,omitempty"`
	From        int64           `json:"from"`
	To          int64           `json:"to"`
	Facts       json.RawMessage `json:"facts"`
	FactsHash   string          `json:"facts_hash"`
	Text        string          `json:"text"`
	Writer      string          `json:"writer"`
	Model       string          `json:"model,omitempty"`
	Fallback    string          `json:"fallback,omitempty"`
	Edited      bool            `json:"edited,omitempty"`
	Status      string          `json:"status"`
	CreatedBy   string          `json:"created_by"`
	CreatedAt   int64           `json:"created_at"`
	UpdatedBy   string          `json:"updated_by,omitempty"`
	UpdatedAt   int64           `json:"updated_at,omitempty"`
	PublishedBy string          `json:"published_by,omitempty"`
	PublishedAt int64           `json:"published_at,omitempty"`
}

// StatusUpdate is the API view of an update.
type StatusUpdate struct {
	ID          string          `json:"id"`
	ProjectIDs  []string        `json:"project_ids"`
	TeamID      string          `json:"team_id,omitempty"`
	From        time.Time       `json:"from"`
	To          time.Time       `json:"to"`
	Text        string          `json:"text" doc:"Markdown; each statement cites its facts, e.g. [C1]"`
	TextHTML    string          `json:"text_html"`
	Facts       json.RawMessage `json:"facts" doc:"The facts the text was written from"`
	Writer      string          `json:"writer" enum:"builtin,model"`
	Model       string          `json:"model,omitempty"`
	Fallback    string          `json:"fallback,omitempty" doc:"Why the built-in writer was used instead of the model"`
	Edited      bool            `json:"edited"`
	Status      string          `json:"status" enum:"draft,published"`
	CreatedBy   string          `json:"created_by"`
	CreatedAt   time.Time       `json:"created_at"`
	PublishedAt *time.Time      `json:"published_at"`
	Version     uint64          `json:"version"`
}

func (r *statusUpdateRecord) view(version uint64) *StatusUpdate {
	out := &StatusUpdate{
		ID: r.ID, ProjectIDs: r.ProjectIDs, TeamID: r.TeamID, From: time.UnixMilli(r.From).UTC(), To: time.UnixMilli(r.To).UTC(),
		Text: r.Text, TextHTML: RenderMarkdown(r.Text), Facts: r.Facts, Writer: r.Writer, Model: r.Model, Fallback: r.Fallback,
		Edited: r.Edited, Status: r.Status, CreatedBy: r.CreatedBy, CreatedAt: time.UnixMilli(r.CreatedAt).UTC(), Version: version,
	}
	if r.PublishedAt != 0 {
		t := time.UnixMilli(r.PublishedAt).UTC()
		out.PublishedAt = &t
	}
	return out
}

func kStatusUpdate(id string) storage.Key        { return storage.K("su", id) }
func kProjectUpdates(project string) storage.Key { return storage.K("ix", "psu", project) }
func kTeamUpdates(team string) storage.Key       { return storage.K("ix", "tsu", team) }
func kModelCache(hash string) storage.Key        { return storage.K("sucache", hash) }
func kAIUsage(month string) storage.Key          { return storage.K("cnt", "ai", month) }
func kDigestSent(user, week string) storage.Key  { return storage.K("digest", user, week) }
func kPublishedUpdates() storage.Key             { return storage.K("ix", "supub") }
func kPublishedUpdate(at int64, id string) storage.Key {
	return kPublishedUpdates().AddUint(uint64(at)).Add(id)
}

// StatusRequest asks for an update.
type StatusRequest struct {
	ProjectID string
	TeamID    string
	Period    string    // "day" or "week" (default), ending now
	From, To  time.Time // or an explicit period
	// OnText receives the model's words as they come (streaming to the UI).
	OnText func(chunk string)
}

func (s *Service) period(req StatusRequest) (time.Time, time.Time, error) {
	now := s.now()
	if !req.From.IsZero() || !req.To.IsZero() {
		if req.From.IsZero() || req.To.IsZero() || !req.To.After(req.From) || req.To.Sub(req.From) > 92*24*time.Hour {
			return time.Time{}, time.Time{}, invalid("from", "invalid_period", "a period has a start before its end and lasts at most 92 days")
		}
		return req.From, req.To, nil
	}
	switch req.Period {
	case "", "week":
		return now.Add(-7 * 24 * time.Hour), now, nil
	case "day":
		return now.Add(-24 * time.Hour), now, nil
	}
	return time.Time{}, time.Time{}, invalid("period", "invalid_period", "period is day or week")
}

// CreateStatusUpdate writes an update for a project or a team's projects.
// Contributors and Leads may ask for one; the plan's monthly number of
// updates bounds it (Free refuses past it; Starter counts overage).
func (s *Service) CreateStatusUpdate(ctx context.Context, p Principal, req StatusRequest) (*StatusUpdate, error) {
	from, to, err := s.period(req)
	if err != nil {
		return nil, err
	}
	_, v := s.tenant(p.Tenant)
	var projects []*projectRecord
	team := ""
	switch {
	case req.TeamID != "":
		tm, err := s.visibleTeam(v, p, req.TeamID)
		if err != nil {
			return nil, err
		}
		team = tm.ID
		for _, pid := range tm.Projects {
			if pr, _, err := s.visibleProject(v, p, pid); err == nil {
				projects = append(projects, pr)
			}
		}
		if len(projects) == 0 {
			return nil, invalid("team", "no_projects", "the team has no project you can see")
		}
	default:
		pr, _, _, err := s.projectWithRole(v, p, req.ProjectID, ProjectContributor, "ask for a status update")
		if err != nil {
			return nil, err
		}
		projects = []*projectRecord{pr}
	}
	return s.writeStatusUpdate(ctx, p.Tenant, p.actor(), projects, team, from, to, req.OnText, nil)
}

// writeStatusUpdate gathers the facts, writes the text and stores the
// update; extra adds ops to the same command (the schedule's run marker).
func (s *Service) writeStatusUpdate(ctx context.Context, tenant, actor string, projects []*projectRecord, team string, from, to time.Time, onText func(string), extra func(*change)) (*StatusUpdate, error) {
	plan, err := s.plan(tenant)
	if err != nil {
		return nil, err
	}
	month := s.now().UTC().Format("2006-01")
	log, v := s.tenant(tenant)
	if plan.AIUpdatesPerMonth != licensing.Unlimited && !plan.AIOverage {
		if n, err := counterValue(v, kAIUsage(month)); err != nil {
			return nil, err
		} else if n >= int64(plan.AIUpdatesPerMonth) {
			return nil, planLimit("status updates this month", plan.Name, int64(plan.AIUpdatesPerMonth))
		}
	}
	facts, err := s.gatherFacts(ctx, tenant, v, projects, from, to, s.now())
	if err != nil {
		return nil, err
	}
	factsJSON, err := json.Marshal(facts)
	if err != nil {
		return nil, fmt.Errorf("engine: facts: %w", err)
	}
	sum := sha256.Sum256(factsJSON)
	hash := hex.EncodeToString(sum[:])
	text, writer, model, fallback, fresh := s.compose(ctx, v, facts, hash, onText)
	rec := statusUpdateRecord{
		ID: newID(), TeamID: team, From: from.UnixMilli(), To: to.UnixMilli(), Facts: factsJSON, FactsHash: hash,
		Text: text, Writer: writer, Model: model, Fallback: fallback, Status: "draft", CreatedBy: actor, CreatedAt: s.now().UnixMilli(),
	}
	for _, pr := range projects {
		rec.ProjectIDs = append(rec.ProjectIDs, pr.ID)
	}
	ch := s.newChange(tenant, "status_update.create", actor)
	ch.plan = plan.Name
	if plan.AIUpdatesPerMonth != licensing.Unlimited && !plan.AIOverage {
		ch.addBounded(kAIUsage(month), 1, int64(plan.AIUpdatesPerMonth), "status updates this month")
	} else {
		// Counted on every plan: above the included number it is overage.
		ch.add(kAIUsage(month), 1)
	}
	ch.put(kStatusUpdate(rec.ID), rec, 1)
	for _, pid := range rec.ProjectIDs {
		ch.index(kProjectUpdates(pid).Add(rec.ID))
	}
	if team != "" {
		ch.index(kTeamUpdates(team).Add(rec.ID))
	}
	if fresh {
		ch.put(kModelCache(hash), map[string]string{"text": text, "model": model}, 1)
	}
	if extra != nil {
		extra(ch)
	}
	res, err := log.Propose(ctx, &ch.cmd)
	if err != nil {
		return nil, fmt.Errorf("engine: propose status update: %w", err)
	}
	if res.Err != nil {
		var le *storage.LimitError
		if errors.As(res.Err, &le) {
			return nil, planLimit(le.Limit, plan.Name, le.Max)
		}
		if errors.Is(res.Err, storage.ErrConflict) {
			return nil, conflict("already_done", "this update was written already")
		}
		return nil, fmt.Errorf("engine: status update: %w", res.Err)
	}
	return rec.view(1), nil
}

// compose writes the text: from the cache when the same facts were seen,
// else by the model (checked) when one is configured, else, or on any
// failure, by the built-in writer. fresh says the model wrote it now.
func (s *Service) compose(ctx context.Context, v storage.View, f *Facts, hash string, onText func(string)) (text, writer, model, fallback string, fresh bool) {
	builtin := func(reason string) (string, string, string, string, bool) {
		t := writeBuiltin(f)
		if onText != nil {
			onText(t)
		}
		return t, WriterBuiltin, "", reason, false
	}
	if s.summarizer == nil {
		return builtin("")
	}
	if c, _, err := getRecord[struct {
		Text  string `json:"text"`
		Model string `json:"model"`
	}](v, kModelCache(hash)); err == nil {
		if onText != nil {
			onText(c.Text)
		}
		return c.Text, WriterModel, c.Model, "", false
	}
	user, err := userPrompt(f)
	if err != nil {
		return builtin("the facts could not be prepared for the model")
	}
	out, err := s.summarizer.Complete(ctx, systemPrompt, user, onText)
	if err != nil {
		s.log.Warn("the model failed; using the built-in writer", "err", err)
		reason := "the model did not answer in time"
		if !errors.Is(err, context.DeadlineExceeded) {
			reason = "the model could not be reached"
		}
		return builtin(reason)
	}
	if err := checkModelText(out, f, s.memberNames(v)); err != nil {
		s.log.Warn("the model's text was refused; using the built-in writer", "reason", err)
		return builtin("the model's text did not match the facts (" + err.Error() + ")")
	}
	return out, WriterModel, s.summarizer.Model(), "", true
}

func (s *Service) memberNames(v storage.View) []string {
	var out []string
	_ = v.Scan(storage.K("user"), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
		var u userRecord
		if jsonDecode(r.Value, &u) == nil {
			out = append(out, u.Name)
		}
		return nil
	})
	return out
}

// ListStatusUpdates lists a project's updates, newest first.
func (s *Service) ListStatusUpdates(ctx context.Context, p Principal, projectID string, pg PageRequest) (*Page[StatusUpdate], error) {
	_, v := s.tenant(p.Tenant)
	if _, _, err := s.visibleProject(v, p, projectID); err != nil {
		return nil, err
	}
	return s.updatePage(v, kProjectUpdates(projectID), pg)
}

func (s *Service) updatePage(v storage.View, index storage.Key, pg PageRequest) (*Page[StatusUpdate], error) {
	return scanPage(v, index, pg, true, func(k storage.Key, _ storage.Record) (*StatusUpdate, error) {
		r, rec, err := getRecord[statusUpdateRecord](v, kStatusUpdate(lastPart(k)))
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return r.view(rec.Version), nil
	})
}

// visibleUpdate loads an update whose projects the caller can all see; it
// also returns the caller's lowest role among them.
func (s *Service) visibleUpdate(v storage.View, p Principal, id string) (*statusUpdateRecord, storage.Record, ProjectRole, error) {
	if !validID(id) {
		return nil, storage.Record{}, "", notFound("status update")
	}
	r, rec, err := getRecord[statusUpdateRecord](v, kStatusUpdate(id))
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, rec, "", notFound("status update")
		}
		return nil, rec, "", err
	}
	role := ProjectLead
	for _, pid := range r.ProjectIDs {
		pr, _, err := s.visibleProject(v, p, pid)
		if err != nil {
			return nil, rec, "", notFound("status update")
		}
		pRole, _, err := projectRole(v, p, pr)
		if err != nil {
			return nil, rec, "", err
		}
		if pRole.rank() < role.rank() {
			role = pRole
		}
	}
	return r, rec, role, nil
}

// GetStatusUpdate returns one update.
func (s *Service) GetStatusUpdate(ctx context.Context, p Principal, id string) (*StatusUpdate, error) {
	_, v := s.tenant(p.Tenant)
	r, rec, _, err := s.visibleUpdate(v, p, id)
	if err != nil {
		return nil, err
	}
	return r.view(rec.Version), nil
}

// EditStatusUpdate changes an update's text (the projects' Leads).
func (s *Service) EditStatusUpdate(ctx context.Context, p Principal, id, text string, ifMatch uint64) (*StatusUpdate, error) {
	if strings.TrimSpace(text) == "" || len(text) > maxDescription {
		return nil, invalid("text", "invalid_text", "the text is 1 to %d bytes", maxDescription)
	}
	return s.changeUpdate(ctx, p, id, ifMatch, "status_update.edit", func(r *statusUpdateRecord) {
		r.Text, r.Edited = text, true
	})
}

// PublishStatusUpdate publishes an update (the projects' Leads): it goes to
// the activity feed and into the weekly digest.
func (s *Service) PublishStatusUpdate(ctx context.Context, p Principal, id string) (*StatusUpdate, error) {
	return s.changeUpdate(ctx, p, id, 0, "status_update.publish", func(r *statusUpdateRecord) {
		r.Status, r.PublishedBy, r.PublishedAt = "published", p.actor(), s.now().UnixMilli()
	})
}

func (s *Service) changeUpdate(ctx context.Context, p Principal, id string, ifMatch uint64, kind string, fn func(*statusUpdateRecord)) (*StatusUpdate, error) {
	log, v := s.tenant(p.Tenant)
	var out *StatusUpdate
	_, err := s.commit(ctx, log, func() (*change, error) {
		r, rec, role, err := s.visibleUpdate(v, p, id)
		if err != nil {
			return nil, err
		}
		if role != ProjectLead {
			return nil, forbidden("only the project's Lead edits and publishes status updates")
		}
		if ifMatch != 0 && ifMatch != rec.Version {
			return nil, errStale
		}
		wasPublished := r.Status == "published"
		fn(r)
		r.UpdatedBy, r.UpdatedAt = p.actor(), s.now().UnixMilli()
		ch := s.newChange(p.Tenant, kind, p.actor())
		ch.expect(kStatusUpdate(id), rec.Version)
		ch.put(kStatusUpdate(id), r, rec.Version+1)
		if r.Status == "published" && !wasPublished {
			ch.index(kPublishedUpdate(r.PublishedAt, r.ID))
			for _, pid := range r.ProjectIDs {
				s.activity(ch, activityInput{Kind: "status_update.published", TargetKind: "status_update", TargetID: r.ID, ProjectID: pid, After: excerpt(r.Text)})
			}
		}
		out = r.view(rec.Version + 1)
		return ch, nil
	})
	return out, err
}

// AIUsage is this month's count of status updates.
type AIUsage struct {
	Month    string `json:"month"`
	Used     int64  `json:"used"`
	Included int    `json:"included" doc:"-1: unlimited"`
	Overage  int64  `json:"overage" doc:"Updates past the included number (billed on plans that allow it)"`
}

// StatusUsage reports this month's status-update usage against the plan.
func (s *Service) StatusUsage(ctx context.Context, p Principal) (*AIUsage, error) {
	plan, err := s.plan(p.Tenant)
	if err != nil {
		return nil, err
	}
	_, v := s.tenant(p.Tenant)
	month := s.now().UTC().Format("2006-01")
	n, err := counterValue(v, kAIUsage(month))
	if err != nil {
		return nil, err
	}
	out := &AIUsage{Month: month, Used: n, Included: plan.AIUpdatesPerMonth}
	if plan.AIUpdatesPerMonth != licensing.Unlimited && n > int64(plan.AIUpdatesPerMonth) {
		out.Overage = n - int64(plan.AIUpdatesPerMonth)
	}
	return out, nil
}

// SendDigests mails each person who wants it a weekly digest of the status
// updates published in the projects they can see, on Monday at the start of
// their working day, once a week. Run it hourly on the leader.
func (s *Service) SendDigests(ctx context.Context) (int, error) {
	if !s.MailEnabled() {
		return 0, nil
	}
	tenants, err := s.workspaceIDs()
	if err != nil {
		return 0, err
	}
	now := s.now()
	sent := 0
	for _, tenant := range tenants {
		log, v := s.tenant(tenant)
		var users []userRecord
		if err := v.Scan(storage.K("user"), storage.ScanOptions{}, func(_ storage.Key, r storage.Record) error {
			var u userRecord
			if err := jsonDecode(r.Value, &u); err != nil {
				return err
			}
			if u.Status == StatusActive && u.Notifications.Digest {
				users = append(users, u)
			}
			return nil
		}); err != nil {
			return sent, err
		}
		for _, u := range users {
			loc, err := time.LoadLocation(u.Timezone)
			if err != nil {
				loc = time.UTC
			}
			local := now.In(loc)
			if local.Weekday() != time.Monday || local.Format("15") != strings.SplitN(u.WorkHours.Start, ":", 2)[0] {
				continue
			}
			year, wk := local.ISOWeek()
			week := fmt.Sprintf("%d-W%02d", year, wk)
			if _, err := v.Get(kDigestSent(u.ID, week)); err == nil {
				continue
			}
			p := Principal{Tenant: tenant, UserID: u.ID, Role: u.Role}
			var lines []string
			since := now.Add(-7 * 24 * time.Hour).UnixMilli()
			err = v.Scan(kPublishedUpdates(), storage.ScanOptions{After: kPublishedUpdates().AddUint(uint64(since))}, func(k storage.Key, _ storage.Record) error {
				r, _, _, err := s.visibleUpdate(v, p, lastPart(k))
				if err != nil {
					return nil
				}
				first := strings.SplitN(r.Text, "\n", 2)[0]
				lines = append(lines, strings.NewReplacer("**", "").Replace(first))
				return nil
			})
			if err != nil {
				return sent, err
			}
			u := u
			_, err = s.commit(ctx, log, func() (*change, error) {
				ch := s.newChange(tenant, "status_update.digest", "system")
				ch.expect(kDigestSent(u.ID, week), 0)
				ch.put(kDigestSent(u.ID, week), map[string]int{"updates": len(lines)}, 1)
				if len(lines) == 0 {
					return ch, nil
				}
				d, err := s.mailWorkspace(v)
				if err != nil {
					return nil, err
				}
				d.Name, d.Lines, d.Link = u.Name, slices.Clip(lines), s.link("/")
				return ch, s.enqueueMail(ch, "digest", u.Email, d)
			})
			if err != nil && !errors.Is(err, ErrConflict) {
				return sent, err
			}
			if len(lines) > 0 {
				sent++
			}
		}
	}
	return sent, nil
}
