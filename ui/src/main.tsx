// The dashboard and editor: a hash-routed single-page app over the public REST API.
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, Meta, clearCredentials, get, setCredentials } from './api';
import { TaskList, NewTask } from './tasks';
import { TaskDetail } from './task';
import { TemplateList, TemplateDetail } from './templates';
import { Editor } from './editor';
import { Schedules } from './automation';
import './style.css';

function useRoute(): string[] {
  const parse = () => (location.hash.replace(/^#\/?/, '') || 'tasks').split('/').map(decodeURIComponent);
  const [route, setRoute] = useState(parse());
  useEffect(() => {
    const on = () => setRoute(parse());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

function SignIn(props: { onDone: (m: Meta) => void; reason?: string }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(props.reason ?? '');
  const submit = async (e: Event) => {
    e.preventDefault();
    setCredentials(user, password);
    try {
      props.onDone(await get<Meta>('/meta'));
    } catch (err) {
      clearCredentials();
      setError(err instanceof ApiError && err.status === 401 ? 'Wrong user name or password.' : String((err as Error).message));
    }
  };
  return (
    <main class="signin">
      <h1>mutask</h1>
      <form onSubmit={submit} aria-label="sign in">
        <label>User name <input name="username" autoComplete="username" value={user} onInput={(e) => setUser((e.target as HTMLInputElement).value)} required /></label>
        <label>Password <input name="password" type="password" autoComplete="current-password" value={password} onInput={(e) => setPassword((e.target as HTMLInputElement).value)} /></label>
        {error && <p class="error" role="alert">{error}</p>}
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

function App() {
  const [meta, setMeta] = useState<Meta | null>(null);
  const [checked, setChecked] = useState(false);
  const route = useRoute();
  useEffect(() => {
    get<Meta>('/meta').then(setMeta).catch(() => setMeta(null)).finally(() => setChecked(true));
  }, []);
  if (!checked) return <p class="muted">Loading…</p>;
  if (!meta) return <SignIn onDone={setMeta} />;
  const [page, ...rest] = route;
  const signOut = () => { clearCredentials(); setMeta(null); location.hash = '#/tasks'; };
  let body;
  switch (page) {
    case 'task': body = <TaskDetail id={rest[0]} meta={meta} />; break;
    case 'new': body = <NewTask template={rest[0]} />; break;
    case 'templates': body = <TemplateList meta={meta} />; break;
    case 'template': body = <TemplateDetail name={rest[0]} meta={meta} />; break;
    case 'editor': body = <Editor name={rest[0]} meta={meta} />; break;
    case 'schedules': body = <Schedules meta={meta} />; break;
    case 'tasks': body = <TaskList meta={meta} />; break;
    default: body = <p class="error">No such page: {page}</p>;
  }
  return (
    <>
      <header>
        <nav aria-label="main">
          <a href="#/tasks" class="brand">mutask</a>
          <a href="#/tasks" aria-current={page === 'tasks' ? 'page' : undefined}>Tasks</a>
          <a href="#/templates" aria-current={page === 'templates' || page === 'template' || page === 'new' ? 'page' : undefined}>Templates</a>
          <a href="#/schedules" aria-current={page === 'schedules' ? 'page' : undefined}>Schedules</a>
          <a href="#/editor" aria-current={page === 'editor' ? 'page' : undefined}>Editor</a>
        </nav>
        <span class="who" data-testid="whoami">{meta.username}{meta.user_is_admin ? ' (admin)' : ''} · <button class="link" onClick={signOut}>Sign out</button></span>
      </header>
      <main>{body}</main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
