package engine

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
)

// mailData fills a mail template. Everything shown comes from the workspace
// and the recipient; links carry single-use tokens.
type mailData struct {
	Workspace  string
	BrandColor string
	Name       string
	Link       string
	Inviter    string
	Role       string
	Expires    string
	Lines      []string
}

type mailTemplate struct {
	subject string
	text    string
	intro   string // the HTML paragraph; the layout adds the button and footer
	button  string
}

var mailTemplates = map[string]mailTemplate{
	"invitation": {
		subject: "{{.Inviter}} invited you to {{.Workspace}} on TeamFlow",
		text:    "{{.Inviter}} invited you to join {{.Workspace}} on TeamFlow as {{.Role}}.\n\nAccept the invitation: {{.Link}}\n\nThe link works once and expires in {{.Expires}}.",
		intro:   "{{.Inviter}} invited you to join <strong>{{.Workspace}}</strong> on TeamFlow as {{.Role}}.",
		button:  "Accept the invitation",
	},
	"verify_email": {
		subject: "Confirm your email for {{.Workspace}}",
		text:    "Hello {{.Name}},\n\nConfirm that this is your email address: {{.Link}}\n\nThe link expires in {{.Expires}}. Until you confirm, you cannot invite others.",
		intro:   "Hello {{.Name}}, confirm that this is your email address for <strong>{{.Workspace}}</strong>.",
		button:  "Confirm my email",
	},
	"password_reset": {
		subject: "Reset your TeamFlow password for {{.Workspace}}",
		text:    "Hello {{.Name}},\n\nSomeone asked to reset your password. If it was you, choose a new one: {{.Link}}\n\nThe link works once and expires in {{.Expires}}. If it was not you, ignore this mail: your password stays as it is.",
		intro:   "Hello {{.Name}}, someone asked to reset your password for <strong>{{.Workspace}}</strong>. If it was you, choose a new one. If not, ignore this mail.",
		button:  "Choose a new password",
	},
	"magic_link": {
		subject: "Your sign-in link for {{.Workspace}}",
		text:    "Hello {{.Name}},\n\nSign in to {{.Workspace}}: {{.Link}}\n\nThe link works once and expires in {{.Expires}}. If you did not ask for it, ignore this mail.",
		intro:   "Hello {{.Name}}, here is your sign-in link for <strong>{{.Workspace}}</strong>.",
		button:  "Sign in",
	},
	"notifications": {
		subject: "{{len .Lines}} update{{if gt (len .Lines) 1}}s{{end}} in {{.Workspace}}",
		text:    "Hello {{.Name}},\n\n{{range .Lines}}- {{.}}\n{{end}}\nSee them all: {{.Link}}",
		intro:   "Hello {{.Name}}, here is what happened in <strong>{{.Workspace}}</strong>:",
		button:  "Open your notifications",
	},
	"digest": {
		subject: "This week in {{.Workspace}}: {{len .Lines}} status update{{if gt (len .Lines) 1}}s{{end}}",
		text:    "Hello {{.Name}},\n\nThe status updates published this week:\n\n{{range .Lines}}- {{.}}\n{{end}}\nRead them in TeamFlow: {{.Link}}\n\n(You get this digest because it is on in your notification preferences.)",
		intro:   "Hello {{.Name}}, here are the status updates published in <strong>{{.Workspace}}</strong> this week:",
		button:  "Open TeamFlow",
	},
	"mfa_reset": {
		subject: "Your second factor for {{.Workspace}} was reset",
		text:    "Hello {{.Name}},\n\n{{.Inviter}} turned off the second factor (authenticator app) of your account in {{.Workspace}} and signed you out everywhere. Sign in again and enrol your authenticator app: {{.Link}}\n\nIf you did not ask for this, tell your administrator.",
		intro:   "Hello {{.Name}}, {{.Inviter}} turned off the second factor of your account in <strong>{{.Workspace}}</strong> and signed you out everywhere. Sign in again and enrol your authenticator app. If you did not ask for this, tell your administrator.",
		button:  "Sign in",
	},
	"invitation_resent": {
		subject: "Reminder: {{.Inviter}} invited you to {{.Workspace}} on TeamFlow",
		text:    "{{.Inviter}} invited you to join {{.Workspace}} on TeamFlow as {{.Role}}.\n\nAccept the invitation: {{.Link}}\n\nThis link replaces any earlier one; it works once and expires in {{.Expires}}.",
		intro:   "{{.Inviter}} invited you to join <strong>{{.Workspace}}</strong> on TeamFlow as {{.Role}}. This link replaces any earlier one.",
		button:  "Accept the invitation",
	},
	"account_locked": {
		subject: "Sign-in to {{.Workspace}} paused after failed attempts",
		text:    "Hello {{.Name}},\n\nThere were too many failed sign-in attempts on your account, so sign-in is paused for {{.Expires}}. If these were not you, reset your password: {{.Link}}",
		intro:   "Hello {{.Name}}, there were too many failed sign-in attempts on your account in <strong>{{.Workspace}}</strong>, so sign-in is paused for {{.Expires}}. If these were not you, reset your password.",
		button:  "Reset my password",
	},
}

const mailLayout = `<!doctype html><html><body style="margin:0;padding:24px;background:#f4f5f7;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1f2937">` +
	`<div style="max-width:560px;margin:0 auto;background:#fff;border-radius:8px;overflow:hidden">` +
	`<div style="background:{{.Color}};color:#fff;padding:16px 24px;font-weight:600">{{.Workspace}}</div>` +
	`<div style="padding:24px"><p>{{.Intro}}</p>{{range .Lines}}<p>{{.}}</p>{{end}}` +
	`{{if .Link}}<p><a href="{{.Link}}" style="display:inline-block;background:{{.Color}};color:#fff;padding:10px 18px;border-radius:6px;text-decoration:none">{{.Button}}</a></p>` +
	`<p style="font-size:12px;color:#6b7280">Or open this address: {{.Link}}</p>{{end}}</div></div></body></html>`

var layout = htmltemplate.Must(htmltemplate.New("layout").Parse(mailLayout))

// renderMail renders a template into subject, text and HTML bodies.
func renderMail(name string, d mailData) (subject, text, html string, err error) {
	t, ok := mailTemplates[name]
	if !ok {
		return "", "", "", fmt.Errorf("engine: no mail template %q", name)
	}
	exec := func(src string) (string, error) {
		tt, err := texttemplate.New(name).Parse(src)
		if err != nil {
			return "", err
		}
		var b bytes.Buffer
		err = tt.Execute(&b, d)
		return b.String(), err
	}
	if subject, err = exec(t.subject); err != nil {
		return
	}
	subject = strings.NewReplacer("\r", " ", "\n", " ").Replace(subject)
	if text, err = exec(t.text); err != nil {
		return
	}
	intro, err := htmlIntro(name, t.intro, d)
	if err != nil {
		return
	}
	color := d.BrandColor
	if !hexColorRE.MatchString(color) {
		color = "#4f46e5"
	}
	var b bytes.Buffer
	err = layout.Execute(&b, map[string]any{
		"Workspace": d.Workspace, "Color": htmltemplate.CSS(color), "Intro": intro,
		"Lines": d.Lines, "Link": d.Link, "Button": t.button,
	})
	return subject, text, b.String(), err
}

// htmlIntro renders the intro with HTML escaping of the data.
func htmlIntro(name, src string, d mailData) (htmltemplate.HTML, error) {
	t, err := htmltemplate.New(name).Parse(src)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return htmltemplate.HTML(b.String()), nil
}

func humanDuration(hours int) string {
	switch {
	case hours < 1:
		return "15 minutes"
	case hours == 1:
		return "1 hour"
	case hours < 48:
		return fmt.Sprintf("%d hours", hours)
	}
	return fmt.Sprintf("%d days", hours/24)
}
