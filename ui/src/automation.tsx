// Schedules, inbound webhooks and notifications: what starts tasks without a person, with
// their next and recent runs, pause/resume and creation (schedules, with missed-run and overlap
// policies and suspend windows), and, for admins, the notification outbox with a Retry button.
// The API decides who may see and change each one.
import { Fragment } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, Meta, Template, del, get, post } from './api';

interface ScheduleRun { occurrence: string; outcome: string; task_id?: string | null }
interface Schedule {
  name: string; template_name: string; when: string; paused: boolean; suspend: string[]; missed: string; overlap: string;
  next_runs: string[]; last_fire?: string | null; last_task?: string | null; recent_runs?: ScheduleRun[];
}
interface Notification {
  id: string; backend: string; state: 'pending' | 'delivered' | 'given_up'; action?: string | null;
  task_id?: string | null; template?: string | null; task_state?: string | null; attempts: number;
  next_attempt?: string | null; last_error?: string | null; created: string;
  delivered?: string | null; given_up?: string | null;
}
interface Webhook { name: string; template_name: string; auth: string; url?: string; header?: string | null; created: string }

export function Schedules(props: { meta: Meta }) {
  const [list, setList] = useState<Schedule[] | null>(null);
  const [hooks, setHooks] = useState<Webhook[]>([]);
  const [templates, setTemplates] = useState<Template[]>([]);
  const [error, setError] = useState('');
  const [form, setForm] = useState({
    name: '', template_name: '', when: 'daily@06:00', input: '{}', missed: 'skip', overlap: 'allow', suspend: '',
  });
  // recent runs of the schedules opened with "Runs" (GET /schedule/{name} answers them)
  const [runs, setRuns] = useState<Record<string, ScheduleRun[] | string>>({});
  const toggleRuns = async (name: string) => {
    if (runs[name] !== undefined) {
      const { [name]: _, ...rest } = runs;
      setRuns(rest);
      return;
    }
    try {
      const s = await get<Schedule>(`/schedule/${encodeURIComponent(name)}`);
      setRuns({ ...runs, [name]: s.recent_runs ?? [] });
    } catch (e) {
      setRuns({ ...runs, [name]: (e as Error).message });
    }
  };
  const [formError, setFormError] = useState('');
  const load = async () => {
    try {
      setList(await get<Schedule[]>('/schedule'));
      setError('');
    } catch (e) {
      setError((e as Error).message);
    }
    get<Webhook[]>('/webhook').then(setHooks).catch(() => setHooks([]));
  };
  useEffect(() => { load(); get<Template[]>('/template').then(setTemplates).catch(() => {}); }, []);
  const act = async (f: () => Promise<unknown>) => {
    try { await f(); await load(); } catch (e) { setError((e as Error).message); }
  };
  const create = async (e: Event) => {
    e.preventDefault();
    let input: unknown;
    try { input = JSON.parse(form.input || '{}'); } catch (err) { setFormError(`Input is not JSON: ${(err as Error).message}`); return; }
    try {
      const suspend = form.suspend.split(/[\n,]+/).map((w) => w.trim()).filter((w) => w);
      await post('/schedule', {
        name: form.name, template_name: form.template_name, when: form.when, input,
        missed: form.missed, overlap: form.overlap, suspend,
      });
      setFormError('');
      setForm({ ...form, name: '' });
      await load();
    } catch (err) {
      const fields = err instanceof ApiError ? err.fields.map((f) => `${f.field}: ${f.message}`).join('; ') : '';
      setFormError((err as Error).message + (fields ? ` — ${fields}` : ''));
    }
  };
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  const when = (t: string) => new Date(t).toLocaleString();
  return (
    <section>
      <h1>Schedules</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {list === null ? !error && <p class="muted">Loading…</p> : list.length === 0 ? <p class="muted" data-testid="no-schedules">No schedule yet.</p> : (
        <table>
          <thead><tr><th>Name</th><th>Template</th><th>When</th><th>Next runs</th><th class="opt">Last</th><th></th></tr></thead>
          <tbody>
            {list.map((s) => (
              <Fragment key={s.name}>
              <tr data-schedule={s.name}>
                <td>{s.name}{s.paused ? <span class="muted"> (paused)</span> : ''}</td>
                <td>{s.template_name}</td>
                <td>
                  <code>{s.when}</code>
                  <div class="muted">missed: {s.missed === 'run_once' ? 'run once' : 'skip'} · overlap: {s.overlap}</div>
                  {s.suspend.length > 0 && <div class="muted">suspended {s.suspend.join(', ')}</div>}
                </td>
                <td>{s.paused ? '—' : s.next_runs.slice(0, 3).map((r) => <div key={r}>{new Date(r).toLocaleString()}</div>)}</td>
                <td class="opt">{s.last_task ? <a href={`#/task/${s.last_task}`}>{s.last_fire ? new Date(s.last_fire).toLocaleString() : 'task'}</a> : '—'}</td>
                <td>
                  {s.paused
                    ? <button onClick={() => act(() => post(`/schedule/${encodeURIComponent(s.name)}/resume`))}>Resume</button>
                    : <button onClick={() => act(() => post(`/schedule/${encodeURIComponent(s.name)}/pause`))}>Pause</button>}
                  {' '}<button onClick={() => toggleRuns(s.name)} aria-expanded={runs[s.name] !== undefined}>Runs</button>
                  {' '}<button class="danger" onClick={() => confirm(`Delete schedule ${s.name}?`) && act(() => del(`/schedule/${encodeURIComponent(s.name)}`))}>Delete</button>
                </td>
              </tr>
              {runs[s.name] !== undefined && (
                <tr data-runs={s.name}>
                  <td colSpan={6}>
                    {typeof runs[s.name] === 'string' ? <p class="error">{runs[s.name] as string}</p>
                      : (runs[s.name] as ScheduleRun[]).length === 0 ? <p class="muted">No run yet.</p> : (
                        <ul class="runs">
                          {(runs[s.name] as ScheduleRun[]).map((r) => (
                            <li key={r.occurrence}>
                              {when(r.occurrence)} — {r.outcome.replace(/_/g, ' ')}
                              {r.task_id && <> · <a href={`#/task/${r.task_id}`}>task</a></>}
                            </li>
                          ))}
                        </ul>
                      )}
                  </td>
                </tr>
              )}
              </Fragment>
            ))}
          </tbody>
        </table>
      )}
      <form class="card" onSubmit={create} aria-label="new schedule">
        <h2>New schedule</h2>
        <label>Name <input name="schedule-name" value={form.name} onInput={set('name')} required /></label>
        <label>Template
          <select name="schedule-template" value={form.template_name} onChange={set('template_name')} required>
            <option value="">choose…</option>
            {templates.map((t) => <option key={t.name} value={t.name}>{t.name}</option>)}
          </select>
        </label>
        <label>When (cron, <code>daily@06:00</code>, <code>every 15m</code>…) <input name="schedule-when" value={form.when} onInput={set('when')} required /></label>
        <label>Input (JSON) <textarea name="schedule-input" rows={3} value={form.input} onInput={set('input')} /></label>
        <label>After downtime
          <select name="schedule-missed" value={form.missed} onChange={set('missed')}>
            <option value="skip">skip the missed runs</option>
            <option value="run_once">run once for all of them</option>
          </select>
        </label>
        <label>While the previous task is unfinished
          <select name="schedule-overlap" value={form.overlap} onChange={set('overlap')}>
            <option value="allow">run anyway</option>
            <option value="skip">skip the run</option>
          </select>
        </label>
        <label>Suspend windows (one per line: <code>22:00-06:00</code> daily, or <code>&lt;RFC 3339&gt;/&lt;RFC 3339&gt;</code>)
          <textarea name="schedule-suspend" rows={2} value={form.suspend} onInput={set('suspend')} />
        </label>
        {formError && <p class="error" role="alert">{formError}</p>}
        <button class="primary" type="submit">Create schedule</button>
      </form>
      <h2>Inbound webhooks</h2>
      {hooks.length === 0 ? <p class="muted">No webhook{props.meta.user_is_admin ? '' : ' you may see'}.</p> : (
        <table>
          <thead><tr><th>Name</th><th>Template</th><th>Signature</th><th class="opt">URL</th></tr></thead>
          <tbody>{hooks.map((h) => (
            <tr key={h.name}><td>{h.name}</td><td>{h.template_name}</td><td>{h.auth}{h.header ? ` (${h.header})` : ''}</td><td class="opt"><code>{h.url ?? `/webhook/${h.name}`}</code></td></tr>
          ))}</tbody>
        </table>
      )}
      {props.meta.user_is_admin && <Notifications />}
    </section>
  );
}

// The notification outbox (admins): deliveries newest first, filtered by state; an undelivered
// one can be re-queued. Payloads are sealed and never shown.
function Notifications() {
  const [state, setState] = useState('');
  const [list, setList] = useState<Notification[] | null>(null);
  const [error, setError] = useState('');
  const load = async (s = state) => {
    try {
      setList(await get<Notification[]>(`/notification?page_size=50${s ? `&state=${s}` : ''}`));
      setError('');
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => { load(); }, []);
  const retry = async (id: string) => {
    try { await post(`/notification/${id}/retry`); await load(); } catch (e) { setError((e as Error).message); }
  };
  const t = (v?: string | null) => (v ? new Date(v).toLocaleString() : '—');
  return (
    <>
      <h2>Notifications</h2>
      <label>Show{' '}
        <select name="notification-state" value={state} onChange={(e) => { const v = (e.target as HTMLSelectElement).value; setState(v); load(v); }}>
          <option value="">all</option>
          <option value="pending">pending</option>
          <option value="delivered">delivered</option>
          <option value="given_up">given up</option>
        </select>
      </label>{' '}
      <button onClick={() => load()}>Refresh</button>
      {error && <p class="error" role="alert">{error}</p>}
      {list === null ? !error && <p class="muted">Loading…</p> : list.length === 0 ? <p class="muted" data-testid="no-notifications">No notification.</p> : (
        <table>
          <thead><tr><th>Created</th><th>Event</th><th>Backend</th><th>State</th><th class="opt">Attempts</th><th class="opt">Last error</th><th></th></tr></thead>
          <tbody>{list.map((n) => (
            <tr key={n.id} data-notification={n.id}>
              <td>{t(n.created)}</td>
              <td>
                {(n.action ?? 'event collected').replace(/_/g, ' ')}
                {n.task_state && ` → ${n.task_state}`}
                {n.task_id && <div class="muted"><a href={`#/task/${n.task_id}`}>{n.template ?? 'task'}</a></div>}
              </td>
              <td>{n.backend}</td>
              <td>
                {n.state.replace('_', ' ')}
                <div class="muted">
                  {n.state === 'delivered' ? t(n.delivered) : n.state === 'given_up' ? t(n.given_up) : `next ${t(n.next_attempt)}`}
                </div>
              </td>
              <td class="opt">{n.attempts}</td>
              <td class="opt">{n.last_error ?? ''}</td>
              <td>{n.state !== 'delivered' && <button onClick={() => retry(n.id)}>Retry</button>}</td>
            </tr>
          ))}</tbody>
        </table>
      )}
    </>
  );
}
