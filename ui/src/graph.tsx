// A step graph laid out with dagre and drawn as SVG, nodes colored by state. Keyboard: each
// node is a focusable button (Enter/Space selects it).
import dagre from '@dagrejs/dagre';

export interface GraphNode { name: string; state?: string; label?: string; deps: string[] }

const COLORS: Record<string, string> = {
  DONE: '#2e7d32', RUNNING: '#1565c0', TODO: '#9e9e9e', PRUNE: '#bdbdbd', TO_RETRY: '#ef6c00',
  RETRY_NOW: '#ef6c00', SERVER_ERROR: '#c62828', CLIENT_ERROR: '#c62828', FATAL_ERROR: '#8e0000',
  CRASHED: '#8e0000', TIMEOUT: '#ad1457', WAITING: '#6a1b9a', AFTERRUN_ERROR: '#c62828', EXPANDED: '#00838f',
  run: '#1565c0', skip: '#9e9e9e', prune: '#bdbdbd', runtime: '#6a1b9a',
};

export function stateColor(state?: string): string {
  if (!state) return '#546e7a';
  return COLORS[state] ?? '#455a64';
}

const W = 150;
const H = 40;

export function Graph(props: { nodes: GraphNode[]; selected?: string; onSelect?: (n: string) => void; label?: string }) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'TB', nodesep: 24, ranksep: 36, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  const names = new Set(props.nodes.map((n) => n.name));
  for (const n of props.nodes) g.setNode(n.name, { width: W, height: H });
  for (const n of props.nodes) {
    for (const d of n.deps) {
      const dep = d.split(':')[0];
      if (names.has(dep)) g.setEdge(dep, n.name);
    }
  }
  dagre.layout(g);
  const graph = g.graph();
  const width = Math.max(graph.width ?? 0, 160);
  const height = Math.max(graph.height ?? 0, 60);
  if (props.nodes.length === 0) return <p class="muted">No steps.</p>;
  return (
    <div class="graph" role="group" aria-label={props.label ?? 'step graph'}>
      <svg width={width} height={height} viewBox={`0 0 ${width} ${height}`}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" fill="#78909c" />
          </marker>
        </defs>
        {g.edges().map((e) => {
          const pts = g.edge(e).points ?? [];
          const d = pts.map((p: { x: number; y: number }, i: number) => `${i ? 'L' : 'M'}${p.x},${p.y}`).join(' ');
          return <path key={`${e.v}->${e.w}`} d={d} fill="none" stroke="#78909c" stroke-width="1.5" marker-end="url(#arrow)" />;
        })}
        {props.nodes.map((n) => {
          const p = g.node(n.name);
          if (!p) return null;
          const sel = props.selected === n.name;
          const select = () => props.onSelect?.(n.name);
          return (
            <g key={n.name} transform={`translate(${p.x - W / 2},${p.y - H / 2})`} class="node"
              data-step={n.name} data-state={n.state ?? ''} tabindex={0} role="button"
              aria-label={`step ${n.name}${n.state ? ', ' + n.state : ''}`} aria-pressed={sel}
              onClick={select} onKeyDown={(e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); select(); } }}>
              <rect width={W} height={H} rx="6" fill={stateColor(n.state)} stroke={sel ? '#ffca28' : 'none'} stroke-width="3" />
              <text x={W / 2} y={16} text-anchor="middle" fill="#fff" font-size="12" font-weight="600">{trim(n.name, 20)}</text>
              <text x={W / 2} y={31} text-anchor="middle" fill="#fff" font-size="10">{trim(n.label ?? n.state ?? '', 24)}</text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}

function trim(s: string, n: number) {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}
