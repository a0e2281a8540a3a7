// The shapes /api/v1 answers (engine/*.go), as the UI uses them.

export type Role = "owner" | "admin" | "member" | "guest";
export type ProjectRole = "lead" | "contributor" | "observer";
export type StatusCategory = "todo" | "in_progress" | "done";
export type Priority = "none" | "low" | "medium" | "high" | "urgent";

export const PRIORITIES: Priority[] = ["none", "low", "medium", "high", "urgent"];
export const ROLES: Role[] = ["owner", "admin", "member", "guest"];

export interface WorkHours {
  start: string;
  end: string;
  days: number[];
}

export interface Branding {
  logo_url: string;
  primary_color: string;
  accent_color: string;
}

export interface Workspace {
  id: string;
  name: string;
  slug: string;
  timezone: string;
  work_hours: WorkHours;
  branding: Branding;
  plan: string;
  /** Days Owners and Admins may work without a second factor (0: at once). */
  mfa_grace_days?: number;
  /** Networks (CIDRs) sign-in and API access may come from; empty: anywhere. Enforced on plans with IP allowlisting. */
  ip_allowlist?: string[];
  /** Web origins whose pages may call the API with this workspace's bearer tokens or API keys. */
  cors_origins?: string[];
  created_at: string;
  updated_at: string;
  version: number;
}

export interface Member {
  id: string;
  email: string;
  name: string;
  role: Role;
  status: "active" | "deactivated";
  timezone: string;
  work_hours: WorkHours;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface ChannelPrefs {
  in_app: boolean;
  email: boolean;
}

export interface NotificationPrefs {
  mentions: ChannelPrefs;
  assignments: ChannelPrefs;
  comments: ChannelPrefs;
  due_soon: ChannelPrefs;
  status_changes: ChannelPrefs;
  digest: boolean;
}

export interface Me extends Member {
  workspace_id: string;
  notifications: NotificationPrefs;
  /** False until the address is confirmed (always true where the server sends no mail). */
  email_verified?: boolean;
  mfa_enabled?: boolean;
  /** How many unused recovery codes are left (with a second factor on). */
  recovery_codes_remaining?: number;
  /** Owners and Admins without a second factor: from then on, only enrolment is reachable. */
  mfa_required_by?: string;
}

export interface Status {
  id: string;
  name: string;
  category: StatusCategory;
}

export interface Project {
  id: string;
  key: string;
  name: string;
  description: string;
  visibility: "workspace" | "private";
  statuses: Status[];
  role: ProjectRole;
  created_by: string;
  created_at: string;
  updated_by: string;
  updated_at: string;
  deleted_at?: string;
  version: number;
}

export interface Task {
  id: string;
  project_id: string;
  number: number;
  key: string;
  title: string;
  description: string;
  description_html?: string;
  status: string;
  status_id: string;
  status_category: StatusCategory;
  assignees: string[];
  due: string | null;
  priority: Priority;
  tags: string[];
  parent_id: string | null;
  position: string;
  created_by: string;
  created_at: string;
  updated_by: string;
  updated_at: string;
  version: number;
}

export interface Comment {
  id: string;
  task_id: string;
  parent_id: string | null;
  author_id: string;
  body: string;
  body_html: string;
  mentions: string[];
  edited: boolean;
  created_at: string;
  updated_at: string;
  version: number;
}

export interface ActivityEntry {
  id: string;
  kind: string;
  target: { kind: string; id: string };
  project_id?: string;
  task_id?: string;
  field?: string;
  before?: unknown;
  after?: unknown;
  actor: string;
  at: string;
  project_name?: string;
  task_key?: string;
  task_title?: string;
}

export interface Invitation {
  id: string;
  email: string;
  role: Role;
  status: "pending" | "accepted" | "revoked" | "expired";
  invited_by: string;
  created_at: string;
  expires_at: string;
  token?: string;
  link?: string;
  version: number;
}

export interface InvitationPreview {
  workspace_name: string;
  workspace_slug: string;
  email: string;
  role: Role;
  expires_at: string;
}

export interface TrashItem {
  kind: "project" | "task" | "comment";
  id: string;
  title: string;
  project_id?: string;
  deleted_at: string;
  deleted_by: string;
  purge_at: string;
}

export interface Plan {
  id: string;
  name: string;
  max_users: number;
  max_projects: number;
  storage_bytes: number;
  history_days: number;
  integrations: number;
  ai_updates_per_month: number;
  custom_workflows: boolean;
  sso: boolean;
  audit_log?: boolean;
  audit_export?: boolean;
  ip_allowlist?: boolean;
  support: string;
  sla: string;
}

export interface PlanInfo {
  plan: Plan;
  users: number;
  projects: number;
  /** Bytes held by attachments. */
  storage_used?: number;
  /** Bytes allowed; -1 when unlimited. */
  storage_quota?: number;
}

export interface SetupStatus {
  needed: boolean;
  mode: "onprem" | "cloud";
}

export interface SessionBody {
  token_type?: string;
  expires_in?: number;
  mfa_required: boolean;
  mfa_token?: string;
  csrf_token?: string;
}

export interface Created extends SessionBody {
  workspace: Workspace;
  owner: Member;
}

export interface TOTPEnrolment {
  secret: string;
  otpauth_url: string;
}

export interface SessionInfo {
  id: string;
  /** password, magic_link, … with +totp when a second factor was used */
  method: string;
  user_agent: string;
  ip: string;
  created_at: string;
  last_seen_at: string;
  expires_at: string;
  current: boolean;
}

export type ApiScope = "read" | "write";

export interface ApiKey {
  id: string;
  name: string;
  scopes: ApiScope[];
  projects: string[] | null;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  /** Only in the answer that created it. */
  token?: string;
}

export interface AuditEntry {
  seq: number;
  action: string;
  actor: string;
  workspace: string;
  target_kind?: string;
  target_id?: string;
  outcome: "success" | "failure" | "denied";
  at: string;
  request_id?: string;
  ip?: string;
  detail?: Record<string, unknown>;
  hash: string;
}

export type NotificationKind = "mention" | "assigned" | "comment" | "due_soon" | "status";

export interface Notification {
  id: string;
  kind: NotificationKind;
  /** A member ID, or "system". */
  actor: string;
  project_id?: string;
  task_id?: string;
  comment_id?: string;
  /** The task's title when it happened. */
  title: string;
  excerpt?: string;
  urgent: boolean;
  created_at: string;
  read_at: string | null;
}

export interface NotificationList {
  items: Notification[];
  next_cursor: string;
  unread: number;
}

/** One fact a status update cites ([C1], [P1], …); tasks carry task_id and key. */
export interface StatusFact {
  ref: string;
  task_id?: string;
  key?: string;
  title?: string;
  status?: string;
  user_id?: string;
  name?: string;
  [k: string]: unknown;
}

export interface StatusUpdate {
  id: string;
  project_ids: string[] | null;
  team_id?: string;
  from: string;
  to: string;
  text: string;
  text_html: string;
  facts?: Record<string, unknown>;
  writer: "builtin" | "model";
  model?: string;
  fallback?: string;
  edited: boolean;
  status: "draft" | "published";
  created_by: string;
  created_at: string;
  published_at: string | null;
  version: number;
}

export interface TeamSchedule {
  frequency: "off" | "daily" | "weekly";
  hour: number;
  weekday?: number;
}

export interface Team {
  id: string;
  name: string;
  members: string[] | null;
  projects: string[] | null;
  timezone: string;
  schedule: TeamSchedule;
  next_run: string | null;
  version: number;
}

export interface AIUsage {
  month: string;
  used: number;
  /** -1: unlimited */
  included: number;
  overage: number;
}

export interface AuditVerification {
  ok: boolean;
  entries: number;
  head_seq: number;
  head_hash?: string;
  first_bad_seq?: number;
  problem?: string;
  checked_at: string;
}

export type AttachmentKind = "file" | "video_message" | "audio_message";

export interface Attachment {
  id: string;
  task_id: string;
  /** The comment it belongs to; null for a file on the task itself. */
  comment_id: string | null;
  name: string;
  /** Sniffed by the server from the content. */
  content_type: string;
  size: number;
  kind: AttachmentKind;
  duration_ms: number | null;
  /** Images, audio, video and PDF are served inline; anything else downloads. */
  inline: boolean;
  sha256: string;
  width?: number;
  height?: number;
  has_thumbnail: boolean;
  uploaded_by: string;
  created_at: string;
}
