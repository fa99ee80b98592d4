// Template editor: YAML in CodeMirror 6, validated as you type by `POST /template/validate`
// (every problem marked at its line and column), completion of template keys and action types,
// a live step-graph preview, plan mode (`POST /template/plan`: what would run with sample inputs,
// nothing executed) and saving (`PUT /template/{name}`, admins; versioned).
import { useEffect, useRef, useState } from 'preact/hooks';
import { EditorState } from '@codemirror/state';
import { EditorView, keymap, lineNumbers, highlightActiveLine } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching } from '@codemirror/language';
import { yaml } from '@codemirror/lang-yaml';
import { Diagnostic, linter, lintGutter } from '@codemirror/lint';
import { autocompletion, CompletionContext, CompletionResult } from '@codemirror/autocomplete';
import { ApiError, Meta, get, post, put } from './api';
import { Graph, stateColor } from './graph';

interface Problem { severity: string; line: number | null; column: number | null; path: string; message: string }
interface Report { valid: boolean; name: string | null; problems: Problem[]; steps: { name: string; action_type: string; dependencies: string[] }[] }
interface PlannedStep { name: string; action_type: string; outcome: string; reason: string; state?: string; configuration: unknown; runtime_values: boolean; errors?: string[]; dependencies: string[]; level: number }
interface Plan { template: string; title: string; input_errors: string[]; steps: PlannedStep[] }

const EXAMPLE = `name: hello-editor
description: Say hello, then maybe shout
title_format: "Hello {{.input.name}}"
inputs:
  - name: name
    description: Who to greet
  - name: shout
    type: bool
    default: false
steps:
  greet:
    description: Build the greeting
    action:
      type: echo
      configuration:
        output: {message: "Hello {{.input.name}}"}
  shout:
    description: Only when asked to
    dependencies: [greet]
    conditions:
      - type: skip
        if:
          - value: "{{.input.shout}}"
            operator: EQ
            expected: "false"
        then: {this: PRUNE}
    action:
      type: echo
      configuration:
        output: {message: "HELLO {{.input.name}}!"}
`;

/** The template JSON schema (`GET /template/schema`): the keys of each level, with descriptions. */
interface SchemaNode { properties?: Record<string, { description?: string }>; $defs?: Record<string, SchemaNode> }
type Keys = { label: string; info?: string }[];
function keysOf(node: SchemaNode | undefined): Keys {
  return Object.entries(node?.properties ?? {}).map(([label, p]) => ({ label, info: p.description }));
}
interface ActionType { name: string; kind: string; description: string; schema: { properties?: Record<string, { description?: string }> } | null }

/** Completion of keys and action types, from the indentation context of the cursor. */
function completer(actions: ActionType[], schema: () => SchemaNode | null) {
  const configKeys = (type: string) => Object.entries(actions.find((a) => a.name === type)?.schema?.properties ?? {});
  return (ctx: CompletionContext): CompletionResult | null => {
    const word = ctx.matchBefore(/[\w.-]*/);
    if (!word || (word.from === word.to && !ctx.explicit)) return null;
    const line = ctx.state.doc.lineAt(ctx.pos);
    const before = line.text.slice(0, word.from - line.from);
    if (/type:\s*$/.test(before)) {
      return { from: word.from, options: actions.map((a) => ({ label: a.name, type: 'enum', detail: a.kind, info: a.description || undefined })) };
    }
    if (before.trim() !== '' && before.trim() !== '-') return null;
    const indent = before.replace(/-\s*$/, '  ').length;
    // walk up to the parent keys
    const parents: string[] = [];
    let want = indent;
    for (let n = line.number - 1; n >= 1 && want > 0; n--) {
      const t = ctx.state.doc.line(n).text;
      const m = /^(\s*)(-\s+)?([\w-]+):/.exec(t);
      if (!m) continue;
      const ind = m[1].length + (m[2] ? m[2].length : 0);
      if (ind < want) { parents.unshift(m[3]); want = m[1].length; }
    }
    const root = schema();
    if (!root) return null;
    const defs = root.$defs ?? {};
    let keys: Keys = keysOf(root);
    const p = parents;
    if (p[0] === 'steps' && p.length === 2) keys = keysOf(defs.step);
    else if (p[0] === 'steps' && (p[2] === 'action' || p[2] === 'pre_hook') && p.length === 3) keys = keysOf(defs.executor);
    else if (p[0] === 'steps' && (p[2] === 'action' || p[2] === 'pre_hook') && p[3] === 'output' && p.length === 4) keys = keysOf(defs.output);
    else if (p[0] === 'steps' && p[2] === 'conditions' && p.length === 3) keys = keysOf(defs.condition);
    else if (p[0] === 'steps' && p[2] === 'conditions' && p[3] === 'if' && p.length === 4) keys = keysOf(defs.assert);
    else if (p[0] === 'steps' && p[3] === 'configuration' && p.length === 4) {
      // the action type of this step
      let type = '';
      for (let n = line.number - 1; n >= 1; n--) {
        const m = /^\s*type:\s*([\w-]+)/.exec(ctx.state.doc.line(n).text);
        if (m) { type = m[1]; break; }
      }
      return { from: word.from, options: configKeys(type).map(([k, p]) => ({ label: k, type: 'property', apply: k + ': ', info: p.description })) };
    } else if ((p[0] === 'inputs' || p[0] === 'resolver_inputs') && p.length === 1) keys = keysOf(defs.input);
    else if (p[0] === 'variables' && p.length === 1) keys = keysOf(defs.variable);
    else if (p.length > 0) return null;
    return { from: word.from, options: keys.map((k) => ({ label: k.label, type: 'property', apply: k.label + ': ', info: k.info })) };
  };
}

function toDiagnostics(view: EditorView, problems: Problem[]): Diagnostic[] {
  const doc = view.state.doc;
  return problems.map((p) => {
    let from = 0;
    let to = Math.min(doc.length, doc.line(1).to);
    if (p.line && p.line <= doc.lines) {
      const l = doc.line(p.line);
      from = Math.min(l.to, l.from + Math.max(0, (p.column ?? 1) - 1));
      to = l.to > from ? l.to : from;
    }
    return { from, to, severity: p.severity === 'error' ? 'error' : 'warning', message: (p.path ? `${p.path}: ` : '') + p.message };
  });
}

export function Editor(props: { name?: string; meta: Meta }) {
  const host = useRef<HTMLDivElement>(null);
  const viewRef = useRef<EditorView | null>(null);
  const [report, setReport] = useState<Report | null>(null);
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');
  const [sample, setSample] = useState('{\n  "name": "world"\n}');
  const [plan, setPlan] = useState<Plan | null>(null);
  const [planError, setPlanError] = useState('');
  const [loaded, setLoaded] = useState(false);

  useEffect(() => {
    let cancelled = false;
    (async () => {
      let text = EXAMPLE;
      if (props.name) {
        try {
          const t = await get<{ source?: string; inputs?: { name: string; default?: unknown }[] }>(`/template/${encodeURIComponent(props.name)}`);
          text = t.source ?? '';
          const s: Record<string, unknown> = {};
          for (const i of t.inputs ?? []) s[i.name] = i.default ?? '';
          setSample(JSON.stringify(s, null, 2));
        } catch (e) {
          setError((e as Error).message);
        }
      }
      let actions: ActionType[] = [];
      try { actions = await get<ActionType[]>('/action'); } catch { /* no completion of action types */ }
      let schema: SchemaNode | null = null;
      try { schema = await get<SchemaNode>('/template/schema'); } catch { /* no completion of keys */ }
      if (cancelled || !host.current) return;
      const validate = linter(async (view) => {
        try {
          const r = await post<Report>('/template/validate', { source: view.state.doc.toString() });
          setReport(r);
          return toDiagnostics(view, r.problems);
        } catch (e) {
          setReport(null);
          setError((e as Error).message);
          return [];
        }
      }, { delay: 400 });
      viewRef.current?.destroy();
      viewRef.current = new EditorView({
        parent: host.current,
        state: EditorState.create({
          doc: text,
          extensions: [lineNumbers(), history(), highlightActiveLine(), indentOnInput(), bracketMatching(),
            syntaxHighlighting(defaultHighlightStyle), yaml(), lintGutter(), validate,
            autocompletion({ override: [completer(actions, () => schema)] }),
            keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
            EditorView.contentAttributes.of({ 'aria-label': 'template YAML' })],
        }),
      });
      setLoaded(true);
    })();
    return () => { cancelled = true; viewRef.current?.destroy(); viewRef.current = null; };
  }, [props.name]);

  const source = () => viewRef.current?.state.doc.toString() ?? '';
  const runPlan = async () => {
    setPlanError('');
    let input: unknown = {};
    try { input = JSON.parse(sample || '{}'); } catch (e) { setPlanError(`Sample inputs are not JSON: ${(e as Error).message}`); return; }
    try {
      setPlan(await post<Plan>('/template/plan', { source: source(), input }));
    } catch (e) {
      setPlan(null);
      const fields = e instanceof ApiError ? e.fields.map((f) => `${f.field}: ${f.message}`).join('\n') : '';
      setPlanError((e as Error).message + (fields ? '\n' + fields : ''));
    }
  };
  const save = async () => {
    const name = report?.name;
    if (!name) { setError('The template has no name yet.'); return; }
    try {
      const r = await put<{ version: number; outcome: string; warning?: string }>(`/template/${encodeURIComponent(name)}`, { source: source() });
      setNotice(`Saved ${name}: version ${r.version} (${r.outcome})${r.warning ? '. ' + r.warning : ''}`);
      setError('');
    } catch (e) {
      const fields = e instanceof ApiError ? e.fields.map((f) => `${f.field}: ${f.message}`).join('; ') : '';
      setError((e as Error).message + (fields ? ': ' + fields : ''));
    }
  };
  const errors = report?.problems.filter((p) => p.severity === 'error') ?? [];
  return (
    <section>
      <h1>Editor{props.name ? `: ${props.name}` : ''}</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {notice && <p role="status" data-testid="save-status">{notice}</p>}
      <div class="row">
        <div class="grow">
          <div class="editor" ref={host} data-testid="editor" />
          {!loaded && <p class="muted">Loading…</p>}
          <div class="actions">
            {props.meta.user_is_admin && <button class="primary" onClick={save} disabled={!report || !report.valid}>Save template</button>}
            <a href="#/editor"><button>New from example</button></a>
          </div>
          <section aria-label="problems" data-testid="problems">
            {report && (report.problems.length === 0 ? <p class="muted">No problem found.</p> : (
              <ul class="problems">
                {report.problems.map((p, i) => (
                  <li key={i} class={p.severity === 'error' ? 'error' : ''} data-line={p.line ?? ''}>
                    {p.line ? `line ${p.line}, column ${p.column}: ` : ''}{p.severity}: {p.path ? `${p.path}: ` : ''}{p.message}
                  </li>
                ))}
              </ul>
            ))}
            {report && <p class="muted">{errors.length} error(s), {report.problems.length - errors.length} warning(s)</p>}
          </section>
        </div>
        <div class="grow">
          <h2>Preview</h2>
          <Graph nodes={(report?.steps ?? []).map((s) => ({ name: s.name, label: s.action_type, deps: s.dependencies }))} label="preview" />
          <h2>Plan</h2>
          <label>Sample inputs (JSON)
            <textarea rows={5} name="sample" value={sample} onInput={(e) => setSample((e.target as HTMLTextAreaElement).value)} />
          </label>
          <button onClick={runPlan}>Plan</button>
          {planError && <pre class="error" role="alert" data-testid="plan-error">{planError}</pre>}
          {plan && (
            <div data-testid="plan">
              <p>Title: <strong>{plan.title}</strong></p>
              {plan.input_errors.length > 0 && <ul class="error">{plan.input_errors.map((e) => <li key={e}>{e}</li>)}</ul>}
              <Graph nodes={plan.steps.map((s) => ({ name: s.name, state: s.outcome, label: s.outcome + (s.state ? ` → ${s.state}` : ''), deps: s.dependencies }))} label="plan" />
              <table class="plan">
                <thead><tr><th>Step</th><th>Outcome</th><th>Configuration</th></tr></thead>
                <tbody>
                  {plan.steps.map((s) => (
                    <tr key={s.name} data-plan-step={s.name} data-outcome={s.outcome}>
                      <td>{s.name}<div class="muted">{s.action_type}</div></td>
                      <td><span class="badge" style={{ background: stateColor(s.outcome) }}>{s.outcome}</span>{s.state ? ` → ${s.state}` : ''}<div class="muted">{s.reason}</div>
                        {(s.errors ?? []).map((e) => <div class="error" key={e}>{e}</div>)}</td>
                      <td><pre>{JSON.stringify(s.configuration, null, 2)}</pre>{s.runtime_values && <div class="muted">Some values are known only at run time.</div>}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </div>
      </div>
    </section>
  );
}
