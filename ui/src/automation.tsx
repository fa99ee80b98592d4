// Schedules and inbound webhooks: what starts tasks without a person, with their next runs,
// pause/resume and creation (schedules). The API decides who may see and change each one.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, Meta, Template, del, get, post } from './api';

interface ScheduleRun { occurrence: string; outcome: string; task_id?: string | null }
interface Schedule {
  name: string; template_name: string; when: string; paused: boolean; suspend: string[]; missed: string; overlap: string;
  next_runs: string[]; last_fire?: string | null; last_task?: string | null; recent_runs?: ScheduleRun[];
}
interface Webhook { name: string; template_name: string; auth: string; url?: string; header?: string | null; created: string }

export function Schedules(props: { meta: Meta }) {
  const [list, setList] = useState<Schedule[] | null>(null);
  const [hooks, setHooks] = useState<Webhook[]>([]);
  const [templates, setTemplates] = useState<Template[]>([]);
  const [error, setError] = useState('');
  const [form, setForm] = useState({ name: '', template_name: '', when: 'daily@06:00', input: '{}' });
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
      await post('/schedule', { name: form.name, template_name: form.template_name, when: form.when, input });
      setFormError('');
      setForm({ ...form, name: '' });
      await load();
    } catch (err) {
      const fields = err instanceof ApiError ? err.fields.map((f) => `${f.field}: ${f.message}`).join('; ') : '';
      setFormError((err as Error).message + (fields ? ` — ${fields}` : ''));
    }
  };
  const set = (k: keyof typeof form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  return (
    <section>
      <h1>Schedules</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {list === null ? !error && <p class="muted">Loading…</p> : list.length === 0 ? <p class="muted" data-testid="no-schedules">No schedule yet.</p> : (
        <table>
          <thead><tr><th>Name</th><th>Template</th><th>When</th><th>Next runs</th><th class="opt">Last</th><th></th></tr></thead>
          <tbody>
            {list.map((s) => (
              <tr key={s.name} data-schedule={s.name}>
                <td>{s.name}{s.paused ? <span class="muted"> (paused)</span> : ''}</td>
                <td>{s.template_name}</td>
                <td><code>{s.when}</code>{s.suspend.length > 0 && <div class="muted">suspended {s.suspend.join(', ')}</div>}</td>
                <td>{s.paused ? '—' : s.next_runs.slice(0, 3).map((r) => <div key={r}>{new Date(r).toLocaleString()}</div>)}</td>
                <td class="opt">{s.last_task ? <a href={`#/task/${s.last_task}`}>{s.last_fire ? new Date(s.last_fire).toLocaleString() : 'task'}</a> : '—'}</td>
                <td>
                  {s.paused
                    ? <button onClick={() => act(() => post(`/schedule/${encodeURIComponent(s.name)}/resume`))}>Resume</button>
                    : <button onClick={() => act(() => post(`/schedule/${encodeURIComponent(s.name)}/pause`))}>Pause</button>}
                  {' '}<button class="danger" onClick={() => confirm(`Delete schedule ${s.name}?`) && act(() => del(`/schedule/${encodeURIComponent(s.name)}`))}>Delete</button>
                </td>
              </tr>
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
    </section>
  );
}
