// Template browser: the list, and one template's description, inputs and step graph.
import { useEffect, useState } from 'preact/hooks';
import { Meta, Template, get } from './api';
import { Graph } from './graph';

export function TemplateList(props: { meta: Meta }) {
  const [list, setList] = useState<Template[] | null>(null);
  const [error, setError] = useState('');
  useEffect(() => { get<Template[]>('/template').then(setList).catch((e) => setError((e as Error).message)); }, []);
  return (
    <section>
      <h1>Templates</h1>
      {props.meta.user_is_admin && <p><a href="#/editor">Write a new template…</a></p>}
      {error && <p class="error" role="alert">{error}</p>}
      {list === null ? !error && <p class="muted">Loading…</p> : list.length === 0 ? <p class="muted">No template is loaded: add YAML files to the templates directory{props.meta.user_is_admin ? ' or write one in the editor' : ''}.</p> : (
        <table>
          <thead><tr><th>Name</th><th>Description</th><th class="opt">Version</th><th></th></tr></thead>
          <tbody>
            {list.map((t) => (
              <tr key={t.name} data-template={t.name}>
                <td><a href={`#/template/${encodeURIComponent(t.name)}`}>{t.name}</a>{t.hidden ? ' (hidden)' : ''}</td>
                <td>{t.description}</td>
                <td class="opt">{t.version}</td>
                <td>{!t.blocked && <a href={`#/new/${encodeURIComponent(t.name)}`}>New task</a>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function TemplateDetail(props: { name: string; meta: Meta }) {
  const [t, setT] = useState<Template | null>(null);
  const [error, setError] = useState('');
  useEffect(() => { get<Template>(`/template/${encodeURIComponent(props.name)}`).then(setT).catch((e) => setError((e as Error).message)); }, [props.name]);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!t) return <p class="muted">Loading…</p>;
  const nodes = Object.entries(t.steps ?? {}).map(([name, s]) => ({ name, label: s?.action?.type, deps: s?.dependencies ?? [] }));
  const inputs = (title: string, list: Template['inputs']) => (
    <>
      <h2>{title}</h2>
      {list.length === 0 ? <p class="muted">None.</p> : (
        <table>
          <thead><tr><th>Name</th><th>Type</th><th>Description</th><th class="opt">Rules</th></tr></thead>
          <tbody>{list.map((i) => (
            <tr key={i.name}><td>{i.name}{i.optional ? '' : ' *'}</td><td>{i.type ?? 'string'}{i.collection ? '[]' : ''}</td><td>{i.description}</td>
              <td class="opt">{[i.regex && `regex ${i.regex}`, i.legal_values?.length && `one of ${i.legal_values.map(String).join(', ')}`, i.default !== undefined && `default ${JSON.stringify(i.default)}`].filter(Boolean).join('; ')}</td></tr>
          ))}</tbody>
        </table>
      )}
    </>
  );
  return (
    <section>
      <h1>{t.name} <span class="muted">v{t.version}</span></h1>
      <p>{t.description}</p>
      {t.long_description && <p>{t.long_description}</p>}
      {t.doc_link && <p><a href={t.doc_link} rel="noreferrer">Documentation</a></p>}
      <div class="actions">
        {!t.blocked && <a href={`#/new/${encodeURIComponent(t.name)}`}><button class="primary">New task</button></a>}
        {props.meta.user_is_admin && <a href={`#/editor/${encodeURIComponent(t.name)}`}><button>Edit</button></a>}
      </div>
      {inputs('Inputs', t.inputs ?? [])}
      {inputs('Resolver inputs', t.resolver_inputs ?? [])}
      <h2>Steps</h2>
      <Graph nodes={nodes} label="template steps" />
    </section>
  );
}
