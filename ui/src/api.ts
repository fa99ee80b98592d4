// The REST API as the app uses it: JSON in and out, credentials from the sign-in form (HTTP
// Basic, kept for the browser session only) or none when a trusted proxy signs users in.

export interface FieldError { field: string; message: string }
export class ApiError extends Error {
  status: number;
  code: string;
  fields: FieldError[];
  constructor(status: number, code: string, message: string, fields: FieldError[] = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }
}

const KEY = 'mutask.auth';

export function setCredentials(user: string, password: string) {
  sessionStorage.setItem(KEY, 'Basic ' + btoa(unescape(encodeURIComponent(`${user}:${password}`))));
}
export function clearCredentials() {
  sessionStorage.removeItem(KEY);
}

export async function call<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { 'X-Mutask-Client': 'ui', Accept: 'application/json' };
  const auth = sessionStorage.getItem(KEY);
  if (auth) headers.Authorization = auth;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network', `cannot reach mutask: ${e}`);
  }
  const text = await res.text();
  let data: any = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!res.ok) {
    const err = data && typeof data === 'object' && data.error ? data.error : null;
    throw new ApiError(res.status, err?.code ?? String(res.status), err?.message ?? (typeof data === 'string' ? data : res.statusText), err?.fields ?? []);
  }
  return data as T;
}

export const get = <T = any>(p: string) => call<T>('GET', p);
export const post = <T = any>(p: string, b?: unknown) => call<T>('POST', p, b ?? {});
export const put = <T = any>(p: string, b?: unknown) => call<T>('PUT', p, b ?? {});
export const del = <T = any>(p: string) => call<T>('DELETE', p);

export interface Meta { username: string; user_is_admin: boolean; user_groups: string[]; version: string }

export interface Input {
  name: string; description?: string; type?: string; regex?: string; legal_values?: unknown[];
  collection?: boolean; optional?: boolean; default?: unknown; hidden?: boolean;
}

export interface Template {
  name: string; description: string; long_description?: string; doc_link?: string; version: number;
  inputs: Input[]; resolver_inputs: Input[]; auto_runnable?: boolean; blocked?: boolean; hidden?: boolean;
  allowed_resolver_usernames?: string[]; steps?: Record<string, any>; source?: string; tags?: Record<string, string>;
}

export interface Task {
  id: string; title: string; template_name: string; template_version: number; state: string;
  requester_username: string; resolver_username?: string | null; input: Record<string, unknown>;
  result?: unknown; tags: Record<string, string>; created: string; last_activity: string;
  steps_done?: number; steps_total?: number; resolution?: string | null; resolution_state?: string | null;
  watcher_usernames?: string[]; watcher_groups?: string[]; resolver_usernames?: string[];
}

export interface Step {
  name: string; state: string; description?: string; action?: { type?: string; configuration?: unknown };
  dependencies?: string[]; try_count: number; last_run?: string | null; error?: string | null;
  output?: unknown; metadata?: unknown; children?: unknown; item?: unknown; parent?: string | null;
  custom_states?: string[];
}

export interface Resolution {
  id: string; task_id: string; state: string; resolver_username?: string | null; run_count: number; run_max: number;
  resolver_inputs: Record<string, unknown> | null; steps: Record<string, Step>; next_retry?: string | null;
  last_start?: string | null; last_stop?: string | null;
}

export interface Comment { id: string; username: string; content: string; created: string; updated: string }
