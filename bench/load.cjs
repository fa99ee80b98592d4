'use strict';
// HTTP load driver for bench/run.sh (Node >= 18, standard library only).
//
//   node load.cjs create  URLS N CLIENTS TEMPLATE
//       N x POST /task from CLIENTS concurrent keep-alive connections; prints the rate.
//   node load.cjs latency URLS M TEMPLATE
//       M tasks one at a time: POST /task, then GET /task/{id} every POLL_MS (default 1, as the peer polls)
//       until it is DONE; prints create->DONE p50/p95/max (after WARM=5 warm-up tasks).
//   node load.cjs latency-wait URLS M TEMPLATE
//       the same with one request per task: POST /task?wait=30s answers once the task is DONE.
//   node load.cjs steady  URLS SECONDS CLIENTS TEMPLATE PAUSEFILE
//       create tasks for SECONDS; while PAUSEFILE exists, wait (the harness sets it when
//       the backlog is above its cap). Prints how many were created.
//
// URLS: comma-separated base URLs; client i talks to URLS[i % n]. Only loopback addresses
// are accepted. Credentials: BENCH_AUTH=user:password (basic). Every loop is bounded in
// count and time; one JSON line goes to stdout.
const http = require('node:http');
const fs = require('node:fs');

const AUTH = 'Basic ' + Buffer.from(process.env.BENCH_AUTH || 'admin:pw').toString('base64');
const POLL_MS = +(process.env.POLL_MS || 1);
const WARM = +(process.env.WARM || 5);
const REQ_TIMEOUT_MS = 30000;
const now = () => process.hrtime.bigint();
const ms = (ns) => Number(ns) / 1e6;
const sleep = (t) => new Promise((r) => setTimeout(r, t));
const pct = (xs, p) => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return +s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))].toFixed(2);
};

function parseUrls(arg, clients) {
  return arg.split(',').map((u) => {
    const url = new URL(u);
    if (!['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
      throw new Error(`refusing non-loopback address ${u}`);
    }
    const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(1, clients) });
    return { host: url.hostname === 'localhost' ? '127.0.0.1' : url.hostname, port: +url.port, agent };
  });
}

function request(target, method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers = { authorization: AUTH, accept: 'application/json' };
    if (data) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = data.length;
    }
    const req = http.request(
      { host: target.host, port: target.port, method, path, headers, agent: target.agent },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let json = null;
          try { json = JSON.parse(text); } catch { /* not JSON */ }
          resolve({ status: res.statusCode, json, text });
        });
      },
    );
    req.setTimeout(REQ_TIMEOUT_MS, () => req.destroy(new Error(`timeout ${method} ${path}`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

async function createOne(target, template) {
  const r = await request(target, 'POST', '/task', { template_name: template, input: {} });
  if (r.status !== 201 || !r.json || !r.json.id) {
    throw new Error(`POST /task -> ${r.status}: ${r.text.slice(0, 300)}`);
  }
  return r.json.id;
}

// ------------------------------------------------------------------ create
async function create(urlsArg, N, clients, template) {
  const targets = parseUrls(urlsArg, clients);
  let next = 0;
  let errors = 0;
  let firstError = null;
  const lat = [];
  const t0 = now();
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const target = targets[c % targets.length];
      for (;;) {
        const i = next++;
        if (i >= N) return;
        const a = now();
        try {
          await createOne(target, template);
          lat.push(ms(now() - a));
        } catch (e) {
          errors++;
          if (!firstError) firstError = String(e.message || e);
          if (errors > Math.max(10, N / 100)) throw new Error(`too many errors; first: ${firstError}`);
        }
      }
    }),
  );
  const wall = ms(now() - t0);
  out({
    test: 'create', N, clients, instances: targets.length, created: lat.length, errors,
    tasks_per_s: Math.round((lat.length / wall) * 1000), wall_s: +(wall / 1000).toFixed(3),
    create_ms_p50: pct(lat, 50), create_ms_p95: pct(lat, 95), first_error: firstError,
  });
}

// ----------------------------------------------------------------- latency
async function latency(urlsArg, M, template) {
  const targets = parseUrls(urlsArg, 1);
  const done = [];
  const created = [];
  let polls = 0;
  for (let i = 0; i < M + WARM; i++) {
    const target = targets[i % targets.length];
    const t0 = now();
    const id = await createOne(target, template);
    const t1 = now();
    for (;;) {
      const r = await request(target, 'GET', `/task/${id}`);
      polls++;
      if (r.status !== 200) throw new Error(`GET /task/${id} -> ${r.status}: ${r.text.slice(0, 300)}`);
      const state = r.json && r.json.state;
      if (state === 'DONE') break;
      if (['BLOCKED', 'CANCELLED', 'WONTFIX'].includes(state)) throw new Error(`task ${id} ended ${state}`);
      if (ms(now() - t0) > 30000) throw new Error(`task ${id} not DONE after 30 s (state ${state})`);
      await sleep(POLL_MS);
    }
    const t2 = now();
    if (i >= WARM) {
      done.push(ms(t2 - t0));
      created.push(ms(t1 - t0));
    }
    await sleep(20);
  }
  out({
    test: 'latency', M, instances: targets.length, poll_ms: POLL_MS,
    done_ms_p50: pct(done, 50), done_ms_p95: pct(done, 95), done_ms_max: pct(done, 100),
    create_ms_p50: pct(created, 50), polls_per_task: +(polls / (M + WARM)).toFixed(1),
  });
}

// ----------------------------------------------------------- latency-wait
async function latencyWait(urlsArg, M, template) {
  const targets = parseUrls(urlsArg, 1);
  const done = [];
  for (let i = 0; i < M + WARM; i++) {
    const target = targets[i % targets.length];
    const t0 = now();
    const r = await request(target, 'POST', '/task?wait=30s', { template_name: template, input: {} });
    const t1 = now();
    if (r.status !== 201 || !r.json) throw new Error(`POST /task?wait -> ${r.status}: ${r.text.slice(0, 300)}`);
    if (r.json.state !== 'DONE') throw new Error(`task ${r.json.id} answered ${r.json.state}, not DONE`);
    if (i >= WARM) done.push(ms(t1 - t0));
    await sleep(20);
  }
  out({
    test: 'latency-wait', M, instances: targets.length,
    done_ms_p50: pct(done, 50), done_ms_p95: pct(done, 95), done_ms_max: pct(done, 100),
  });
}

// ------------------------------------------------------------------ steady
async function steady(urlsArg, seconds, clients, template, pauseFile) {
  const targets = parseUrls(urlsArg, clients);
  const end = now() + BigInt(Math.round(seconds * 1e9));
  let createdN = 0;
  let errors = 0;
  let firstError = null;
  let paused = false;
  let pausedChecked = 0n;
  let pausedMs = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const target = targets[c % targets.length];
      while (now() < end) {
        const t = now();
        if (t - pausedChecked > 200000000n) { // look at the pause file at most every 200 ms
          pausedChecked = t;
          paused = fs.existsSync(pauseFile);
        }
        if (paused) {
          await sleep(200);
          if (c === 0) pausedMs += 200;
          continue;
        }
        try {
          await createOne(target, template);
          createdN++;
        } catch (e) {
          errors++;
          if (!firstError) firstError = String(e.message || e);
          if (errors > 1000) throw new Error(`too many errors; first: ${firstError}`);
          await sleep(100);
        }
      }
    }),
  );
  out({ test: 'steady', seconds, clients, created: createdN, errors, paused_s: pausedMs / 1000, first_error: firstError });
}

function out(o) {
  console.log(JSON.stringify(o));
}

const [mode, ...a] = process.argv.slice(2);
const main = {
  create: () => create(a[0], +a[1], +a[2], a[3]),
  latency: () => latency(a[0], +a[1], a[2]),
  'latency-wait': () => latencyWait(a[0], +a[1], a[2]),
  steady: () => steady(a[0], +a[1], +a[2], a[3], a[4]),
}[mode];
if (!main) {
  console.error('usage: node load.cjs create|latency|latency-wait|steady … (see the header of this file)');
  process.exit(2);
}
main().then(
  () => process.exit(0),
  (e) => { console.error(String(e && e.stack || e)); process.exit(1); },
);
