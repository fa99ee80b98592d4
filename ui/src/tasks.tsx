// Task list (filters, counts by state, paging, auto-refresh) and the new-task form generated
// from a template's inputs.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, FieldError, Input, Meta, Task, Template, get, post } from './api';

const TASK_STATES = ['TODO', 'RUNNING', 'BLOCKED', 'WAITING', 'DELAYED', 'DONE', 'CANCELLED', 'WONTFIX'];
const TASK_COLORS: Record<string, string> = {
  TODO: '#607d8b', RUNNING: '#1565c0', BLOCKED: '#c62828', WAITING: '#6a1b9a', DELAYED: '#ef6c00',
  DONE: '#2e7d32', CANCELLED: '#757575', WONTFIX: '#757575',
};

export function StateBadge(props: { state: string }) {
  return <span class="badge" data-state={props.state} style={{ background: TASK_COLORS[props.state] ?? '#455a64' }}>{props.state}</span>;
}

export function TaskList(props: { meta: Meta }) {
  const params = new URLSearchParams(location.hash.split('?')[1] ?? '');
  const [scope, setScope] = useState(params.get('type') ?? 'all');
  const [state, setState] = useState(params.get('state') ?? '');
  const [template, setTemplate] = useState(params.get('template') ?? '');
  const [search, setSearch] = useState(params.get('title') ?? '');
  const [title, setTitle] = useState(search); // the search sent to the API (debounced)
  const [tag, setTag] = useState(params.get('tag') ?? '');
  const [pages, setPages] = useState<string[]>([]); // `last` ids of the pages before this one
  const [tasks, setTasks] = useState<Task[] | null>(null);
  const [more, setMore] = useState(false);
  const [counts, setCounts] = useState<Record<string, number>>({});
  const [templates, setTemplates] = useState<Template[]>([]);
  const [error, setError] = useState('');
  const [auto, setAuto] = useState(true);
  const pageSize = 50;

  useEffect(() => { get<Template[]>('/template').then(setTemplates).catch(() => {}); }, []);
  const load = async () => {
    const q = new URLSearchParams({ type: scope, page_size: String(pageSize + 1) });
    // tag filters: key=value (the API's `tag` parameter)
    if (state) q.set('state', state);
    if (template) q.set('template', template);
    if (/^[^=]+=.*$/.test(tag)) q.set('tag', tag);
    if (title.trim()) q.set('title', title.trim());
    // counts by state: what this caller sees with these filters, every state (not paged)
    const c = new URLSearchParams(q);
    c.delete('page_size');
    c.delete('state');
    const last = pages[pages.length - 1];
    if (last) q.set('last', last);
    try {
      const list = await get<Task[]>(`/task?${q}`);
      setMore(list.length > pageSize);
      setTasks(list.slice(0, pageSize));
      setError('');
      const counted = await get<{ states: Record<string, number>; total: number }>(`/task/count?${c}`);
      setCounts(counted.states);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => {
    const t = setTimeout(() => { if (search !== title) { setTitle(search); setPages([]); } }, 300);
    return () => clearTimeout(t);
  }, [search]);
  useEffect(() => { load(); }, [scope, state, template, tag, title, pages.join(',')]);
  useEffect(() => {
    if (!auto) return;
    const t = setInterval(load, 5000);
    return () => clearInterval(t);
  }, [auto, scope, state, template, tag, title, pages.join(',')]);

  const shown = tasks ?? [];
  const resetPaging = () => setPages([]);
  return (
    <section>
      <h1>Tasks</h1>
      <div class="counts" aria-label="tasks by state">
        {TASK_STATES.map((s) => (
          <button key={s} class="link" onClick={() => { setState(state === s ? '' : s); resetPaging(); }} aria-pressed={state === s}>
            <StateBadge state={s} /> <span data-count={s}>{counts[s] ?? 0}</span>
          </button>
        ))}
      </div>
      <div class="filters">
        <label>Show
          <select value={scope} onChange={(e) => { setScope((e.target as HTMLSelectElement).value); resetPaging(); }} name="type">
            <option value="own">mine</option>
            <option value="resolvable">to resolve</option>
            <option value="all">all{props.meta.user_is_admin ? '' : ' I can see'}</option>
          </select>
        </label>
        <label>State
          <select value={state} name="state" onChange={(e) => { setState((e.target as HTMLSelectElement).value); resetPaging(); }}>
            <option value="">any</option>
            {TASK_STATES.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <label>Template
          <select value={template} name="template" onChange={(e) => { setTemplate((e.target as HTMLSelectElement).value); resetPaging(); }}>
            <option value="">any</option>
            {templates.map((t) => <option key={t.name} value={t.name}>{t.name}</option>)}
          </select>
        </label>
        <label>Tag <input name="tag" placeholder="key=value" value={tag} onChange={(e) => { setTag((e.target as HTMLInputElement).value); resetPaging(); }} /></label>
        <label>Title <input type="search" name="search" placeholder="search titles" value={search} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} /></label>
        <label><input type="checkbox" checked={auto} onChange={(e) => setAuto((e.target as HTMLInputElement).checked)} /> auto-refresh</label>
        <a href="#/templates"><button class="primary">New task…</button></a>
      </div>
      {error && <p class="error" role="alert">{error}</p>}
      {tasks === null ? <p class="muted">Loading…</p> : shown.length === 0 ? (
        <p class="muted" data-testid="empty">No task here{state || template || search ? ' with these filters' : ''}. <a href="#/templates">Create one from a template.</a></p>
      ) : (
        <table>
          <thead><tr><th>Title</th><th>State</th><th class="opt">Template</th><th class="opt">Requester</th><th class="opt">Steps</th><th class="opt">Last activity</th></tr></thead>
          <tbody>
            {shown.map((t) => (
              <tr key={t.id} data-task={t.id}>
                <td><a href={`#/task/${t.id}`}>{t.title}</a></td>
                <td><StateBadge state={t.state} /></td>
                <td class="opt">{t.template_name}</td>
                <td class="opt">{t.requester_username}</td>
                <td class="opt">{t.steps_total ? `${t.steps_done ?? 0}/${t.steps_total}` : ''}</td>
                <td class="opt">{new Date(t.last_activity).toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="actions">
        <button disabled={pages.length === 0} onClick={() => setPages(pages.slice(0, -1))}>Previous page</button>
        <button disabled={!more} onClick={() => tasks && setPages([...pages, tasks[tasks.length - 1].id])}>Next page</button>
      </div>
    </section>
  );
}

/** One input of a form generated from a template's declared inputs. */
export function InputField(props: { input: Input; value: unknown; onChange: (v: unknown) => void; error?: string; prefix: string }) {
  const i = props.input;
  const id = `${props.prefix}-${i.name}`;
  const type = i.type ?? 'string';
  let regexError = '';
  if (i.regex && typeof props.value === 'string' && props.value !== '') {
    try {
      if (!new RegExp(`^(?:${i.regex})$`).test(props.value)) regexError = `must match ${i.regex}`;
    } catch { /* Go syntax the browser does not know: the server checks */ }
  }
  const err = props.error || regexError;
  let control;
  if (i.legal_values && i.legal_values.length > 0 && !i.collection) {
    control = (
      <select id={id} name={i.name} value={props.value === undefined ? '' : String(props.value)} onChange={(e) => {
        const raw = (e.target as HTMLSelectElement).value;
        const legal = i.legal_values!.find((v) => String(v) === raw);
        props.onChange(raw === '' ? undefined : legal);
      }}>
        <option value="">{i.optional ? '(none)' : 'choose…'}</option>
        {i.legal_values.map((v) => <option key={String(v)} value={String(v)}>{String(v)}</option>)}
      </select>
    );
  } else if (type === 'bool' && !i.collection) {
    control = <input id={id} name={i.name} type="checkbox" checked={props.value === true} onChange={(e) => props.onChange((e.target as HTMLInputElement).checked)} />;
  } else if (i.collection) {
    const text = Array.isArray(props.value) ? (props.value as unknown[]).join('\n') : '';
    control = <textarea id={id} name={i.name} rows={3} placeholder="one value per line" value={text} onInput={(e) => {
      const lines = (e.target as HTMLTextAreaElement).value.split('\n').filter((l) => l !== '');
      props.onChange(type === 'number' ? lines.map(Number) : type === 'bool' ? lines.map((l) => l === 'true') : lines);
    }} />;
  } else {
    control = <input id={id} name={i.name} type={type === 'password' ? 'password' : type === 'number' ? 'number' : 'text'}
      value={props.value === undefined || props.value === null ? '' : String(props.value)} aria-invalid={err ? true : undefined}
      onInput={(e) => {
        const raw = (e.target as HTMLInputElement).value;
        props.onChange(raw === '' ? undefined : type === 'number' ? Number(raw) : raw);
      }} />;
  }
  return (
    <div class="input-field" data-input={i.name}>
      <label for={id}>{i.name}{i.optional || i.default !== undefined ? '' : ' *'}</label>
      {control}
      {i.description && <div class="muted">{i.description}{i.default !== undefined ? ` (default: ${JSON.stringify(i.default)})` : ''}</div>}
      {err && <div class="field-error" role="alert">{err}</div>}
    </div>
  );
}

/** Names typed comma- or space-separated, without duplicates. */
export function splitNames(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).map((x) => x.trim()).filter((x) => x !== ''))];
}

/** Watchers (usernames and groups) of a task: who may follow it without resolving it. */
export function WatcherFields(props: { users: string; groups: string; onUsers: (v: string) => void; onGroups: (v: string) => void; errors?: Record<string, string> }) {
  const e = props.errors ?? {};
  return (
    <fieldset class="watchers">
      <legend>Watchers</legend>
      <div class="input-field">
        <label for="watcher_usernames">Usernames</label>
        <input id="watcher_usernames" name="watcher_usernames" placeholder="alice, bob" value={props.users}
          onInput={(ev) => props.onUsers((ev.target as HTMLInputElement).value)} />
        {e.watcher_usernames && <div class="field-error" role="alert">{e.watcher_usernames}</div>}
      </div>
      <div class="input-field">
        <label for="watcher_groups">Groups</label>
        <input id="watcher_groups" name="watcher_groups" placeholder="ops, sre" value={props.groups}
          onInput={(ev) => props.onGroups((ev.target as HTMLInputElement).value)} />
        {e.watcher_groups && <div class="field-error" role="alert">{e.watcher_groups}</div>}
      </div>
      <div class="muted">Comma-separated; watchers see the task and its steps, without outputs.</div>
    </fieldset>
  );
}

export function fieldErrors(e: unknown, prefix: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (e instanceof ApiError) {
    for (const f of e.fields as FieldError[]) {
      const name = f.field.startsWith(prefix + '.') ? f.field.slice(prefix.length + 1).replace(/\[\d+\]$/, '') : f.field;
      out[name] = f.message;
    }
  }
  return out;
}

export function NewTask(props: { template: string }) {
  const [t, setT] = useState<Template | null>(null);
  const [values, setValues] = useState<Record<string, unknown>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [watchers, setWatchers] = useState('');
  const [watcherGroups, setWatcherGroups] = useState('');
  useEffect(() => {
    get<Template>(`/template/${encodeURIComponent(props.template)}`).then((x) => {
      setT(x);
      const init: Record<string, unknown> = {};
      for (const i of x.inputs ?? []) if (i.default !== undefined) init[i.name] = i.default;
      setValues(init);
    }).catch((e) => setError((e as Error).message));
  }, [props.template]);
  if (error && !t) return <p class="error" role="alert">{error}</p>;
  if (!t) return <p class="muted">Loading…</p>;
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const input: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(values)) if (v !== undefined) input[k] = v;
      const body: Record<string, unknown> = { template_name: t.name, input };
      if (splitNames(watchers).length > 0) body.watcher_usernames = splitNames(watchers);
      if (splitNames(watcherGroups).length > 0) body.watcher_groups = splitNames(watcherGroups);
      const task = await post<{ id: string }>('/task', body);
      location.hash = `#/task/${task.id}`;
    } catch (err) {
      setErrors(fieldErrors(err, 'input'));
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section>
      <h1>New task: {t.name}</h1>
      <p>{t.description}</p>
      {t.blocked && <p class="error">This template is blocked: no task can be created from it.</p>}
      <form onSubmit={submit} aria-label="new task" class="card">
        {(t.inputs ?? []).filter((i) => !i.hidden).map((i) => (
          <InputField key={i.name} prefix="input" input={i} value={values[i.name]} error={errors[i.name]}
            onChange={(v) => setValues({ ...values, [i.name]: v })} />
        ))}
        {(t.inputs ?? []).length === 0 && <p class="muted">This template takes no input.</p>}
        <WatcherFields users={watchers} groups={watcherGroups} onUsers={setWatchers} onGroups={setWatcherGroups}
          errors={errors} />
        {error && <p class="error" role="alert" data-testid="form-error">{error}</p>}
        <button class="primary" type="submit" disabled={busy || t.blocked}>Create task</button>
      </form>
    </section>
  );
}
