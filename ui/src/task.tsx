// Task detail: the step graph (live while it runs), each step's configuration, output,
// metadata, error and tries; the resolver flow (fill resolver inputs, approve); run control
// (run, pause, cancel, extend, start over; retry / skip / prune a failed step); comments.
import { useEffect, useRef, useState } from 'preact/hooks';
import { Comment, Meta, Resolution, Step, Task, Template, del, get, post, put } from './api';
import { Graph } from './graph';
import { InputField, StateBadge, WatcherFields, fieldErrors, splitNames } from './tasks';

const FINAL_TASK = ['DONE', 'CANCELLED', 'WONTFIX'];
const FAILED_STEP = ['SERVER_ERROR', 'CLIENT_ERROR', 'FATAL_ERROR', 'CRASHED', 'TIMEOUT', 'AFTERRUN_ERROR', 'TO_RETRY'];

function Json(props: { value: unknown; label: string }) {
  if (props.value === null || props.value === undefined) return null;
  return <><h3>{props.label}</h3><pre data-testid={`step-${props.label.toLowerCase()}`}>{JSON.stringify(props.value, null, 2)}</pre></>;
}

export function TaskDetail(props: { id: string; meta: Meta }) {
  const [task, setTask] = useState<Task | null>(null);
  const [res, setRes] = useState<Resolution | null>(null);
  const [tpl, setTpl] = useState<Template | null>(null);
  const [comments, setComments] = useState<Comment[]>([]);
  const [selected, setSelected] = useState<string>('');
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  // the template fetched (or being fetched): the refresh timer runs an older render's `load`,
  // whose `tpl` is still null, so the state cannot tell it the template is here already
  const tplName = useRef('');

  const load = async () => {
    try {
      const t = await get<Task>(`/task/${props.id}`);
      setTask(t);
      if (tplName.current !== t.template_name) {
        tplName.current = t.template_name;
        get<Template>(`/template/${encodeURIComponent(t.template_name)}`)
          .then(setTpl)
          .catch(() => { tplName.current = ''; });
      }
      if (t.resolution) setRes(await get<Resolution>(`/resolution/${t.resolution}`)); else setRes(null);
      get<Comment[]>(`/task/${props.id}/comment`).then(setComments).catch(() => {});
      setError('');
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => { load(); }, [props.id]);
  const live = task && !FINAL_TASK.includes(task.state);
  useEffect(() => {
    if (!live) return;
    const t = setInterval(load, 1500);
    return () => clearInterval(t);
  }, [live, props.id]);

  if (error && !task) return <p class="error" role="alert">{error}</p>;
  if (!task) return <p class="muted">Loading…</p>;

  const act = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      setNotice(what);
      setError('');
      await load();
    } catch (e) {
      setError(`${what}: ${(e as Error).message}`);
    }
  };
  const r = res;
  const steps = r ? Object.values(r.steps) : [];
  const step = r && selected ? r.steps[selected] : undefined;
  const nodes = steps.filter((s) => !s.parent).map((s) => ({ name: s.name, state: s.state, deps: s.dependencies ?? [] }));
  return (
    <section>
      <h1 data-testid="task-title">{task.title} <StateBadge state={task.state} /></h1>
      <p class="muted">
        {task.template_name} v{task.template_version} · requested by {task.requester_username} · {new Date(task.created).toLocaleString()}
        {task.resolver_username ? ` · resolved by ${task.resolver_username}` : ''}
        {Object.keys(task.tags ?? {}).length > 0 ? ` · tags: ${Object.entries(task.tags).map(([k, v]) => `${k}=${v}`).join(', ')}` : ''}
      </p>
      {error && <p class="error" role="alert">{error}</p>}
      {notice && !error && <p class="muted" role="status">{notice}: done.</p>}
      <div class="row">
        <div class="grow">
          {!r && task.state === 'TODO' && <ResolveForm task={task} tpl={tpl} onDone={load} />}
          {r && (
            <>
              <div class="actions" aria-label="resolution actions">
                <span>Resolution <StateBadge state={r.state} /> run {r.run_count}/{r.run_max}</span>
                <button onClick={() => act('Run', () => post(`/resolution/${r.id}/run`))}>Run</button>
                <button onClick={() => act('Pause', () => post(`/resolution/${r.id}/pause`))}>Pause</button>
                <button onClick={() => act('Extend', () => post(`/resolution/${r.id}/extend`))}>Extend</button>
                <button class="danger" onClick={() => confirm('Cancel this task?') && act('Cancel', () => post(`/resolution/${r.id}/cancel`))}>Cancel</button>
                <button onClick={() => act('Start over', () => post('/resolution', { task_id: task.id, start_over: true, resolver_inputs: r.resolver_inputs ?? {} }))}>Start over</button>
              </div>
              <Graph nodes={nodes} selected={selected} onSelect={setSelected} label="task steps" />
              <p class="muted">Select a step to see its details.</p>
            </>
          )}
          {task.result != null && <Json label="Result" value={task.result} />}
          <h2>Inputs</h2>
          <pre data-testid="task-input">{JSON.stringify(task.input, null, 2)}</pre>
          <Watchers task={task} meta={props.meta} onChange={load} />
          <Comments task={task} comments={comments} meta={props.meta} onChange={load} />
        </div>
        {r && step && (
          <aside class="grow card" aria-label={`step ${step.name}`} data-testid="step-panel">
            <h2>{step.name} <StateBadge state={step.state} /></h2>
            {step.description && <p>{step.description}</p>}
            <p class="muted">action {step.action?.type ?? '?'} · tries {step.try_count}{step.last_run ? ` · last run ${new Date(step.last_run).toLocaleString()}` : ''}</p>
            {step.error && <p class="error" data-testid="step-error">{step.error}</p>}
            <StepControl r={r} step={step} act={act} />
            <StepLogView resolution={r.id} step={step.name} running={step.state === 'RUNNING'} key={`${r.id}/${step.name}`} />
            <StepConfiguration resolution={r.id} step={step} key={`conf/${r.id}/${step.name}`} />
            <Json label="Output" value={step.output} />
            <Json label="Metadata" value={step.metadata} />
            <Json label="Children" value={step.children} />
          </aside>
        )}
      </div>
    </section>
  );
}

interface Rendered {
  name: string; configuration: unknown; as_written: unknown; runtime_values: boolean; errors: string[];
  children?: { item: unknown; configuration: unknown; errors?: string[] }[];
}

/** The step's configuration rendered with the resolution's values (secrets masked by the API),
 * or as written in the template; refreshed when the step's state or tries change. */
function StepConfiguration(props: { resolution: string; step: Step }) {
  const [rendered, setRendered] = useState<Rendered | null>(null);
  const [written, setWritten] = useState(false);
  const [error, setError] = useState('');
  const { step } = props;
  useEffect(() => {
    get<Rendered>(`/resolution/${props.resolution}/step/${encodeURIComponent(step.name)}/configuration`)
      .then((x) => { setRendered(x); setError(''); })
      .catch((e) => setError((e as Error).message));
  }, [step.state, step.try_count]);
  if (step.action?.configuration === undefined && !rendered) return null;
  const shown = written || !rendered ? (rendered?.as_written ?? step.action?.configuration) : rendered.configuration;
  return (
    <section aria-label="step configuration">
      <h3>Configuration{' '}
        <span class="toggle" role="group" aria-label="configuration view">
          <button class="link" aria-pressed={!written} onClick={() => setWritten(false)} disabled={!rendered}>rendered</button>
          {' · '}
          <button class="link" aria-pressed={written} onClick={() => setWritten(true)}>as written</button>
        </span>
      </h3>
      <pre data-testid="step-configuration">{JSON.stringify(shown, null, 2)}</pre>
      {!written && rendered && rendered.runtime_values && <p class="muted">Values you may not see, or known only while the step runs, are shown as written.</p>}
      {!written && rendered && rendered.errors.length > 0 && <p class="error">{rendered.errors.join('; ')}</p>}
      {!written && rendered?.children && rendered.children.length > 0 && (
        <details>
          <summary>Per element ({rendered.children.length})</summary>
          {rendered.children.map((c, i) => (
            <div key={i}>
              <div class="muted">element {JSON.stringify(c.item)}</div>
              <pre data-testid="step-configuration-child">{JSON.stringify(c.configuration, null, 2)}</pre>
            </div>
          ))}
        </details>
      )}
      {error && <p class="muted">Rendered configuration: {error}</p>}
    </section>
  );
}

/** Watchers of the task, editable by whoever may edit the task (the API decides: 403 shown). */
function Watchers(props: { task: Task; meta: Meta; onChange: () => void }) {
  const t = props.task;
  const [editing, setEditing] = useState(false);
  const [users, setUsers] = useState('');
  const [groups, setGroups] = useState('');
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState('');
  const open = () => {
    setUsers((t.watcher_usernames ?? []).join(', '));
    setGroups((t.watcher_groups ?? []).join(', '));
    setErrors({});
    setError('');
    setEditing(true);
  };
  const save = async (e: Event) => {
    e.preventDefault();
    try {
      await put(`/task/${t.id}`, { watcher_usernames: splitNames(users), watcher_groups: splitNames(groups) });
      setEditing(false);
      props.onChange();
    } catch (err) {
      setErrors(fieldErrors(err, ''));
      setError((err as Error).message);
    }
  };
  const list = [...(t.watcher_usernames ?? []), ...(t.watcher_groups ?? []).map((g) => `group ${g}`)];
  return (
    <section aria-label="watchers">
      <h2>Watchers</h2>
      {!editing && (
        <p data-testid="watchers">
          {list.length > 0 ? list.join(', ') : <span class="muted">Nobody watches this task.</span>}{' '}
          <button class="link" onClick={open}>edit watchers</button>
        </p>
      )}
      {editing && (
        <form onSubmit={save} aria-label="edit watchers" class="card">
          <WatcherFields users={users} groups={groups} onUsers={setUsers} onGroups={setGroups} errors={errors} />
          {error && <p class="error" role="alert" data-testid="watchers-error">{error}</p>}
          <div class="actions">
            <button class="primary" type="submit">Save watchers</button>
            <button type="button" onClick={() => setEditing(false)}>Cancel</button>
          </div>
        </form>
      )}
    </section>
  );
}

interface LogLine { chunk: number; at: string; stream: string; text: string }
interface LogPage { execution: number | null; executions: number[]; lines: LogLine[]; next: number | null; progress: { percent: number | null; message: string } | null }

/** The step's log (latest execution), refreshed while the step runs; progress as a bar. */
function StepLogView(props: { resolution: string; step: string; running: boolean }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [progress, setProgress] = useState<LogPage['progress']>(null);
  const [execution, setExecution] = useState<number | null>(null);
  const [error, setError] = useState('');
  // where the next page starts: kept in a ref, since the timer's closure outlives renders
  const at = useRef<{ execution: number | null; next: number | null }>({ execution: null, next: null });
  // pages are read one after the other, never two at once
  const queue = useRef<Promise<void>>(Promise.resolve());
  const base = `/resolution/${props.resolution}/step/${encodeURIComponent(props.step)}/log`;
  const readPage = async (): Promise<void> => {
    const { execution: shown, next } = at.current;
    const page = await get<LogPage>(base + (shown === null ? '' : `?execution=${shown}${next === null ? '' : `&after=${next}`}`));
    if (shown === null) {
      // the first page of the latest execution (none yet when the step has not started)
      at.current = { execution: page.execution, next: page.next };
      setExecution(page.execution);
      setLines(page.lines.slice(-2000));
      setProgress(page.progress);
    } else {
      at.current = { execution: shown, next: page.next };
      if (page.lines.length > 0) setLines((old) => [...old, ...page.lines].slice(-2000));
      if (page.progress) setProgress(page.progress);
    }
    const latest = page.executions.length > 0 ? page.executions[page.executions.length - 1] : null;
    if (latest !== null && at.current.execution !== null && latest > at.current.execution) {
      // a newer execution started (a retry): show it from its first line
      at.current = { execution: null, next: null };
      return readPage();
    }
  };
  const load = () => {
    queue.current = queue.current
      .then(readPage)
      .then(() => setError(''), (e) => setError((e as Error).message));
  };
  useEffect(() => {
    load();
    if (!props.running) return;
    const t = setInterval(load, 1500);
    return () => clearInterval(t);
  }, [props.running]);
  if (error) return <p class="muted">Log: {error}</p>;
  if (lines.length === 0 && !progress) return null;
  return (
    <section aria-label="step log">
      <h3>Log{execution ? ` (execution ${execution})` : ''}</h3>
      {progress && (
        <div data-testid="step-progress">
          {progress.percent !== null && <progress max={100} value={progress.percent}>{progress.percent}%</progress>}
          {' '}{progress.percent !== null ? `${progress.percent}% ` : ''}{progress.message}
        </div>
      )}
      <pre data-testid="step-log">{lines.filter((l) => l.stream !== 'progress').map((l) => (l.stream === 'stderr' ? '! ' : l.stream === 'http' ? '> ' : '') + l.text).join('\n')}</pre>
    </section>
  );
}

function StepControl(props: { r: Resolution; step: Step; act: (w: string, f: () => Promise<unknown>) => Promise<void> }) {
  const { r, step, act } = props;
  const set = (state: string) => act(`Set ${step.name} to ${state}`, async () => {
    if (!['PAUSED'].includes(r.state)) await post(`/resolution/${r.id}/pause`);
    await put(`/resolution/${r.id}/step/${encodeURIComponent(step.name)}/state`, { state });
    await post(`/resolution/${r.id}/run`);
  });
  const failed = FAILED_STEP.includes(step.state) || (step.custom_states ?? []).includes(step.state);
  if (!failed) return null;
  return (
    <div class="actions" aria-label="step actions">
      <button onClick={() => set('TODO')}>Retry step</button>
      <button onClick={() => set('DONE')}>Skip (mark DONE)</button>
      <button onClick={() => set('PRUNE')}>Prune step</button>
    </div>
  );
}

function ResolveForm(props: { task: Task; tpl: Template | null; onDone: () => void }) {
  const [values, setValues] = useState<Record<string, unknown>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState('');
  const inputs = props.tpl?.resolver_inputs ?? [];
  // defaults fill only what the resolver has not typed yet: the template arrives after the
  // form is shown, and a value entered in between must not be wiped
  useEffect(() => {
    const init: Record<string, unknown> = {};
    for (const i of inputs) if (i.default !== undefined) init[i.name] = i.default;
    setValues((typed) => ({ ...init, ...typed }));
  }, [props.tpl?.name]);
  const submit = async (e: Event) => {
    e.preventDefault();
    try {
      const resolver_inputs: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(values)) if (v !== undefined) resolver_inputs[k] = v;
      const res = await post<{ id: string }>('/resolution', { task_id: props.task.id, resolver_inputs });
      await post(`/resolution/${res.id}/run`);
      props.onDone();
    } catch (err) {
      setErrors(fieldErrors(err, 'resolver_input'));
      setError((err as Error).message);
    }
  };
  return (
    <form class="card" onSubmit={submit} aria-label="resolve">
      <h2>Waiting for a resolver</h2>
      {inputs.filter((i) => !i.hidden).map((i) => (
        <InputField key={i.name} prefix="resolver_input" input={i} value={values[i.name]} error={errors[i.name]}
          onChange={(v) => setValues({ ...values, [i.name]: v })} />
      ))}
      {error && <p class="error" role="alert" data-testid="resolve-error">{error}</p>}
      <div class="actions">
        <button class="primary" type="submit">Approve and run</button>
      </div>
    </form>
  );
}

function Comments(props: { task: Task; comments: Comment[]; meta: Meta; onChange: () => void }) {
  const [text, setText] = useState('');
  const [editing, setEditing] = useState<string>('');
  const [editText, setEditText] = useState('');
  const [error, setError] = useState('');
  const base = `/task/${props.task.id}/comment`;
  const run = async (f: () => Promise<unknown>) => {
    try { await f(); setError(''); props.onChange(); } catch (e) { setError((e as Error).message); }
  };
  return (
    <section aria-label="comments">
      <h2>Comments and history</h2>
      {props.comments.length === 0 && <p class="muted">No comment yet.</p>}
      <ul>
        {props.comments.map((c) => (
          <li key={c.id} data-comment={c.id}>
            <strong>{c.username}</strong> <span class="muted">{new Date(c.created).toLocaleString()}</span>
            {editing === c.id ? (
              <form onSubmit={(e) => { e.preventDefault(); run(() => put(`${base}/${c.id}`, { content: editText })).then(() => setEditing('')); }}>
                <input aria-label="edit comment" value={editText} onInput={(e) => setEditText((e.target as HTMLInputElement).value)} />
                <button type="submit">Save</button> <button type="button" onClick={() => setEditing('')}>Cancel</button>
              </form>
            ) : (
              <>
                <div>{c.content}</div>
                {(c.username === props.meta.username || props.meta.user_is_admin) && (
                  <span class="actions">
                    <button class="link" onClick={() => { setEditing(c.id); setEditText(c.content); }}>edit</button>
                    <button class="link" onClick={() => run(() => del(`${base}/${c.id}`))}>delete</button>
                  </span>
                )}
              </>
            )}
          </li>
        ))}
      </ul>
      <form onSubmit={(e) => { e.preventDefault(); if (text.trim()) run(() => post(base, { content: text })).then(() => setText('')); }} class="inline">
        <label>Add a comment <input name="comment" value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} /></label>
        <button type="submit">Add</button>
      </form>
      {error && <p class="error" role="alert">{error}</p>}
    </section>
  );
}
