package engine

import "github.com/teamflow/teamflow/storage"

// Tenant-relative keys. Records live at <kind>/<id>; secondary indexes at
// ix/<index>/<values...>/<id>, written in the same command as their record.
var (
	kWorkspace = storage.K("ws")
	kUsersCnt  = storage.K("cnt", "users")
	kProjCnt   = storage.K("cnt", "projects")
)

func kUser(id string) storage.Key          { return storage.K("user", id) }
func kEmail(email string) storage.Key      { return storage.K("ix", "email", email) }
func kInvite(id string) storage.Key        { return storage.K("inv", id) }
func kInviteToken(hash string) storage.Key { return storage.K("ix", "invtok", hash) }
func kSession(id string) storage.Key       { return storage.K("sess", id) }
func kUserSessions(user string) storage.Key {
	return storage.K("ix", "usess", user)
}
func kRefresh(hash string) storage.Key      { return storage.K("rt", hash) }
func kProject(id string) storage.Key        { return storage.K("proj", id) }
func kProjectKey(key string) storage.Key    { return storage.K("ix", "projkey", key) }
func kProjMember(p, u string) storage.Key   { return storage.K("pm", p, u) }
func kUserProjects(u string) storage.Key    { return storage.K("ix", "upm", u) }
func kTaskNumCnt(p string) storage.Key      { return storage.K("cnt", "tasknum", p) }
func kTaskNumber(p string) storage.Key      { return storage.K("ix", "tnum", p) }
func kTask(id string) storage.Key           { return storage.K("task", id) }
func kComment(id string) storage.Key        { return storage.K("cmt", id) }
func kTaskComments(task string) storage.Key { return storage.K("ix", "tcm", task) }
func kActivity(id string) storage.Key       { return storage.K("act", id) }
func kProjActivity(p string) storage.Key    { return storage.K("ix", "pa", p) }
func kTaskActivity(t string) storage.Key    { return storage.K("ix", "tact", t) }
func kTrash(kind, id string) storage.Key    { return storage.K("trash", kind, id) }
func kFilter(id string) storage.Key         { return storage.K("filter", id) }

// Task indexes, all under the project so a project's lists never scan
// another's. Each ends with the task ID, so entries sort by creation within
// equal values (IDs are UUIDv7).
func kIxProjectTasks(p string) storage.Key { return storage.K("ix", "pt", p) }
func kIxStatus(p, st string) storage.Key   { return storage.K("ix", "pts", p, st) }
func kIxAssignee(p, u string) storage.Key  { return storage.K("ix", "pta", p, u) }
func kIxTag(p, tag string) storage.Key     { return storage.K("ix", "ptg", p, tag) }
func kIxChildren(parent string) storage.Key {
	return storage.K("ix", "tch", parent)
}
func kIxSort(p, sort string) storage.Key { return storage.K("ix", "pso", p, sort) }

// Platform keys.
var (
	sysSetup    = storage.K("setup")
	sysOperator = storage.K("operator")
	sysInit     = storage.K("init")
)

func sysWorkspace(id string) storage.Key   { return storage.K("ws", id) }
func sysWorkspaces() storage.Key           { return storage.K("ws") }
func sysSlug(slug string) storage.Key      { return storage.K("slug", slug) }
func sysSigningKey(kid string) storage.Key { return storage.K("signkey", kid) }
func sysSigningKeys() storage.Key          { return storage.K("signkey") }
func sysOperatorToken(h string) storage.Key {
	return storage.K("optok", h)
}
