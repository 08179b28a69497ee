// mrt-bridge studio: every control is built from the daemon's address table (/api/studio.json).
// Control messages go to /ws as JSON {address, args}; status comes back a few times a second;
// audio arrives on /ws/audio as PCM stream packets and plays through an AudioWorklet.
'use strict';

// The few addresses the page lays out specially (the slots, the keyboard, the game mapping).
// Every other route of the table gets a generic widget built from its argument list.
const SLOT_TEXT = '/style/prompt/<slot>';
const SLOT_PALETTE = '/style/palette/<slot>';
const SLOT_WEIGHT = '/style/weight/<slot>';
const NOTE_ON = '/note/on';
const NOTE_OFF = '/note/off';
const RTPC = '/game/<rtpc>';
const STATE = '/state';
const TRIGGER = '/trigger';
const TEMPO = '/tempo';
const SPECIAL = new Set([SLOT_TEXT, SLOT_PALETTE, SLOT_WEIGHT, NOTE_ON, NOTE_OFF, RTPC, STATE, TRIGGER]);

const ROLL_FRAMES = 250;         // 10 s of frames on the piano roll
const ROLL_LOW = 21, ROLL_HIGH = 108;  // the piano's range; pitches outside it are drawn on its edges
const THROTTLE_MS = 40;          // at most one message per control per frame
const HOLD_AFTER_INPUT_MS = 1500;  // a widget the user just moved ignores status for this long

const studio = window.studio = {
  desc: null, ws: null, connected: false, sent: 0, errors: [], status: null, statusCount: 0,
  frames: [], audio: { on: false, packets: 0, gaps: 0, bad: 0, worklet: {} },
};
const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
};
const getPath = (obj, path) => path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
const fmt = (v, digits = 2) => (v === null || v === undefined ? '–' : Number(v).toFixed(digits));

// ------------------------------------------------------------------ messages
function say(text) { $('message').textContent = text; }

function send(address, args) {
  if (!studio.ws || studio.ws.readyState !== WebSocket.OPEN) { say('not connected to the daemon'); return; }
  studio.ws.send(JSON.stringify({ address, args }));
  studio.sent += 1;
}

const pending = new Map();
function sendThrottled(address, args) {
  const p = pending.get(address) || { last: 0, timer: null, args: null };
  p.args = args;
  pending.set(address, p);
  if (p.timer) return;
  const wait = Math.max(0, p.last + THROTTLE_MS - performance.now());
  p.timer = setTimeout(() => { p.timer = null; p.last = performance.now(); send(address, p.args); }, wait);
}

function touched(e) { e.dataset.touched = String(performance.now()); }
function idle(e) { return !(performance.now() - Number(e.dataset.touched || -1e9) < HOLD_AFTER_INPUT_MS); }

// ------------------------------------------------------------ generic widgets
function label(route) {
  return el('span', { class: 'label', title: route.address }, route.address.replace(/^\//, ''));
}

function numberStep(arg) {
  if (arg.kind === 'int') return 1;
  const span = arg.hi - arg.lo;
  return span <= 2 ? 0.01 : span <= 20 ? 0.05 : 0.1;
}

function sliderRow(route, arg, onValue, value) {
  const out = el('span', { class: 'value' }, fmt(value));
  const input = el('input', { type: 'range', min: arg.lo, max: arg.hi, step: numberStep(arg), value,
    dataset: { address: route.address } });
  input.addEventListener('input', () => { touched(input); out.textContent = fmt(input.value); onValue(Number(input.value)); });
  input.show = (v) => { if (idle(input) && v !== undefined && v !== null) { input.value = v; out.textContent = fmt(v); } };
  return [input, out];
}

function parseValue(arg, text) {
  if (arg.kind === 'string') return text;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v)) throw new Error(`${arg.name}: not a number`);
  return arg.kind === 'int' || arg.kind === 'bool' ? Math.round(v) : v;
}

// One widget per route, from its arguments alone.
function genericWidget(route) {
  const row = el('div', { class: 'row', title: route.doc, dataset: { address: route.address } }, label(route));
  const args = route.args;
  const one = args.length === 1 && args[0].count === 1 ? args[0] : null;
  const widgets = [];
  if (route.prefix) {
    // A parameterised address with no special layout: the parameter is typed in.
    const param = el('input', { type: 'text', placeholder: route.param_doc || 'name' });
    const fields = args.map((a) => el('input', { type: 'text', placeholder: a.name, title: a.doc }));
    row.append(param, ...fields, el('button', { type: 'button', onclick: () => {
      try { send(route.prefix + param.value, fields.map((f, i) => parseValue(args[i], f.value))); } catch (e) { say(e.message); }
    } }, 'send'));
  } else if (args.length === 0) {
    row.replaceChildren(el('button', { type: 'button', title: route.doc, dataset: { address: route.address },
      onclick: () => send(route.address, []) }, route.address.replace(/^\//, '')));
  } else if (one && one.kind === 'bool') {
    const box = el('input', { type: 'checkbox', dataset: { address: route.address } });
    box.addEventListener('change', () => { touched(box); send(route.address, [box.checked ? 1 : 0]); });
    box.show = (v) => { if (idle(box)) box.checked = Boolean(v); };
    widgets.push(box);
    row.append(box);
  } else if (one && one.kind === 'float' && one.lo !== null) {
    const [input, out] = sliderRow(route, one, (v) => sendThrottled(route.address, [v]), one.default ?? one.lo);
    widgets.push(input);
    row.append(input, out);
  } else if (one && one.kind === 'int' && one.lo !== null && one.hi - one.lo <= 8) {
    const select = el('select', { dataset: { address: route.address } });
    for (let v = one.lo; v <= one.hi; v++) select.append(el('option', { value: v }, String(v)));
    select.addEventListener('change', () => { touched(select); send(route.address, [Number(select.value)]); });
    select.show = (v) => { if (idle(select)) select.value = String(v); };
    widgets.push(select);
    row.append(select);
  } else {
    // Numbers, strings, fixed-length lists and several arguments: typed in, sent with the button.
    const fields = args.map((a) => {
      const hint = a.count > 1 ? `${a.count} × ${a.kind} (${a.lo}..${a.hi}), spaces between` :
        `${a.name}${a.lo !== null && a.kind !== 'bool' ? ` ${a.lo}..${a.hi}` : ''}${a.optional ? ' (optional)' : ''}`;
      const f = el('input', { type: a.kind === 'string' || a.count > 1 ? 'text' : 'number', placeholder: hint,
        title: a.doc || hint, dataset: { address: route.address } });
      if (a.kind !== 'string' && a.count === 1) { f.min = a.lo ?? ''; f.max = a.hi ?? ''; f.step = numberStep(a); }
      return f;
    });
    const go = () => {
      try {
        const values = [];
        fields.forEach((f, i) => {
          const a = args[i];
          if (a.count > 1) values.push(...f.value.trim().split(/[\s,]+/).map((t) => parseValue(a, t)));
          else if (f.value.trim() === '' && a.optional) return;
          else values.push(parseValue(a, f.value));
        });
        send(route.address, values);
      } catch (e) { say(e.message); }
    };
    fields.forEach((f) => f.addEventListener('keydown', (e) => { touched(f); if (e.key === 'Enter') go(); }));
    if (one) { const f = fields[0]; f.show = (v) => { if (idle(f) && document.activeElement !== f) f.value = v; }; widgets.push(f); }
    row.append(...fields, el('button', { type: 'button', onclick: go }, 'send'));
    row.fields = fields;
  }
  if (route.status && widgets.length) widgets[0].dataset.status = route.status;
  return row;
}

// ------------------------------------------------------------------ style slots
function buildSlots(desc, byAddress) {
  const text = byAddress.get(SLOT_TEXT);
  const palette = byAddress.get(SLOT_PALETTE);
  const weight = byAddress.get(SLOT_WEIGHT);
  if (!text && !palette) return;
  const wArg = (weight || text || palette).args.find((a) => a.name === 'weight');
  for (let i = 0; i < desc.slots; i++) {
    const kind = el('select', { title: 'text prompt or a palette name' });
    if (text) kind.append(el('option', { value: 'text', dataset: { address: SLOT_TEXT } }, 'text'));
    if (palette) kind.append(el('option', { value: 'palette', dataset: { address: SLOT_PALETTE } }, 'palette'));
    const prompt = el('input', { type: 'text', placeholder: 'prompt (Enter to send; empty clears)',
      dataset: { address: SLOT_TEXT, slot: i } });
    const route = { address: SLOT_WEIGHT };
    let sendWeight = (v) => sendThrottled(SLOT_WEIGHT.replace('<slot>', i), [v]);
    if (!weight) sendWeight = () => sendPrompt();
    const [w, out] = sliderRow(route, wArg, (v) => sendWeight(v), 1.0);
    w.dataset.slot = i;
    let lastPrompt = '';
    const sendPrompt = () => {
      touched(prompt);
      const text = prompt.value.trim();
      // A prompt typed into an empty slot is meant to be heard: give it the default weight.
      if (text && !lastPrompt && Number(w.value) === 0) { w.value = wArg.default ?? 1; touched(w); out.textContent = fmt(w.value); }
      lastPrompt = text;
      const addr = (kind.value === 'palette' ? SLOT_PALETTE : SLOT_TEXT).replace('<slot>', i);
      send(addr, [text, Number(w.value)]);
    };
    prompt.addEventListener('keydown', (e) => { touched(prompt); if (e.key === 'Enter') sendPrompt(); });
    prompt.addEventListener('change', () => { if (prompt.value.trim() !== lastPrompt) sendPrompt(); });
    kind.addEventListener('change', () => { touched(prompt); if (prompt.value.trim()) sendPrompt(); });
    const row = el('div', { class: 'row', dataset: { slot: i } }, el('span', { class: 'label' }, `slot ${i}`), kind, prompt, w, out);
    row.show = (slot) => {
      if (!slot) return;
      w.show(slot.weight);
      if (!idle(prompt)) return;
      const isPalette = slot.prompt.startsWith('palette:');
      lastPrompt = isPalette ? slot.prompt.slice('palette:'.length) : slot.prompt;
      if (document.activeElement !== prompt) {
        kind.value = isPalette && palette ? 'palette' : 'text';
        prompt.value = lastPrompt;
      }
    };
    $('slots').append(row);
  }
}

// --------------------------------------------------------------- game mapping
function buildGame(desc, byAddress) {
  const cfg = desc.config;
  const panel = $('panel-game');
  panel.hidden = false;
  if (!cfg) {
    $('rtpcs').append(el('p', { class: 'muted' }, 'No mapping loaded: start the daemon with --config FILE.toml.'));
    return;
  }
  const rtpc = byAddress.get(RTPC);
  if (rtpc) {
    for (const r of cfg.rtpcs) {
      const arg = { kind: 'float', lo: r.lo, hi: r.hi };
      const [input, out] = sliderRow(rtpc, arg, (v) => sendThrottled(rtpc.prefix + r.name, [v]), r.default);
      input.dataset.rtpc = r.name;
      $('rtpcs').append(el('div', { class: 'row', title: `${r.curve} curve, slew ${r.slew_s} s` },
        el('span', { class: 'label' }, r.name), input, out));
    }
  }
  if (byAddress.has(STATE)) {
    for (const s of cfg.states) {
      $('states').append(el('button', { type: 'button', dataset: { address: STATE, state: s.name },
        title: `crossfade ${s.crossfade_s} s, quantised to the ${s.quantize}`, onclick: () => send(STATE, [s.name]) }, s.name));
    }
  }
  if (byAddress.has(TRIGGER)) {
    for (const t of cfg.triggers) {
      $('triggers').append(el('button', { type: 'button', dataset: { address: TRIGGER, trigger: t.name },
        title: `${t.kind}, quantised to the ${t.quantize}`, onclick: () => send(TRIGGER, [t.name]) }, t.name));
    }
  }
  const beat = $('beat');
  for (let i = 0; i < cfg.beats_per_bar; i++) beat.append(el('span', { class: i === 0 ? 'dot down' : 'dot' }));
  beat.append(el('span', { class: 'bar' }));
}

let beatClock = null;  // {beat, bpm, bpb, at}
function showBeat() {
  requestAnimationFrame(showBeat);
  if (!beatClock) return;
  const ahead = Math.min(0.5, (performance.now() - beatClock.at) / 1000);  // extrapolate half a second at most
  const pos = beatClock.beat + ahead * beatClock.bpm / 60;
  const bpb = beatClock.bpb;
  const beat = $('beat');
  let dots = beat.querySelectorAll('.dot');
  if (dots.length !== bpb) {
    beat.querySelectorAll('.dot').forEach((d) => d.remove());
    for (let i = bpb - 1; i >= 0; i--) beat.prepend(el('span', { class: i === 0 ? 'dot down' : 'dot' }));
    dots = beat.querySelectorAll('.dot');
  }
  const whole = Math.floor(pos);
  dots.forEach((d, i) => d.classList.toggle('on', i === ((whole % bpb) + bpb) % bpb && pos - whole < 0.5));
  beat.querySelector('.bar').textContent = `bar ${Math.floor(whole / bpb) + 1} · beat ${((whole % bpb) + bpb) % bpb + 1} · ${fmt(beatClock.bpm, 1)} bpm`;
}

// ------------------------------------------------------------------- keyboard
const KEYS = 'awsedftgyhujk';  // computer keys from C upwards
let keyBase = 60;
const held = new Set();       // pitches sounding from this page
const keyPitch = new Map();   // computer key -> the pitch it started
function noteOn(pitch) {
  if (held.has(pitch) || pitch < 0 || pitch > 127) return;
  held.add(pitch);
  send(NOTE_ON, [pitch, Number($('velocity') ? $('velocity').value : 100)]);
  document.querySelectorAll(`.key[data-pitch="${pitch}"]`).forEach((k) => k.classList.add('down'));
}
function noteOff(pitch) {
  if (!held.delete(pitch)) return;
  send(NOTE_OFF, [pitch]);
  document.querySelectorAll(`.key[data-pitch="${pitch}"]`).forEach((k) => k.classList.remove('down'));
}

function buildKeyboard(byAddress) {
  const on = byAddress.get(NOTE_ON);
  if (!on || !byAddress.has(NOTE_OFF)) return;
  const names = ['C', 'C#', 'D', 'D#', 'E', 'F', 'F#', 'G', 'G#', 'A', 'A#', 'B'];
  const kb = $('keyboard');
  kb.dataset.address = NOTE_ON;
  kb.append(el('span', { hidden: '', dataset: { address: NOTE_OFF } }));
  const vel = on.args.find((a) => a.name === 'velocity');
  if (vel) {
    kb.before(el('div', { class: 'row' }, el('span', { class: 'label' }, 'velocity'),
      el('input', { id: 'velocity', type: 'range', min: vel.lo, max: vel.hi, step: 1, value: vel.default ?? 100 })));
  }
  const WHITE = 26;
  let x = 0;
  for (let p = 48; p <= 84; p++) {
    const black = names[p % 12].includes('#');
    const key = el('div', { class: `key ${black ? 'black' : 'white'}`, dataset: { pitch: p }, title: `${names[p % 12]}${Math.floor(p / 12) - 1} (${p})` });
    if (black) { key.style.left = `${x - 8}px`; key.style.width = '16px'; } else {
      key.style.left = `${x}px`; key.style.width = `${WHITE}px`; x += WHITE;
      if (p % 12 === 0) key.append(el('span', { class: 'name' }, `C${p / 12 - 1}`));
    }
    key.addEventListener('pointerdown', (e) => { e.preventDefault(); key.releasePointerCapture?.(e.pointerId); noteOn(p); });
    key.addEventListener('pointerenter', (e) => { if (e.buttons & 1) noteOn(p); });
    for (const ev of ['pointerup', 'pointerleave', 'pointercancel']) key.addEventListener(ev, () => noteOff(p));
    kb.append(key);
  }
  kb.style.width = `${x}px`;
  const typing = (e) => e.target instanceof HTMLInputElement && e.target.type !== 'range' && e.target.type !== 'checkbox';
  document.addEventListener('keydown', (e) => {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const k = e.key.toLowerCase();
    if (k === 'z' || k === 'x') { keyBase = Math.max(0, Math.min(108, keyBase + (k === 'z' ? -12 : 12))); say(`keyboard starts at MIDI ${keyBase}`); return; }
    const i = KEYS.indexOf(k);
    if (i >= 0 && !e.repeat && !keyPitch.has(k)) { e.preventDefault(); keyPitch.set(k, keyBase + i); noteOn(keyBase + i); }
  });
  document.addEventListener('keyup', (e) => {
    const k = e.key.toLowerCase();
    if (keyPitch.has(k)) { noteOff(keyPitch.get(k)); keyPitch.delete(k); }
  });
  window.addEventListener('blur', () => { keyPitch.clear(); for (const p of [...held]) noteOff(p); });
}

// --------------------------------------------------------------------- meters
function meter(name, value) {
  const dl = $('meters');
  let dd = dl.querySelector(`dd[data-meter="${name}"]`);
  if (!dd) { dl.append(el('dt', {}, name)); dd = el('dd', { dataset: { meter: name } }); dl.append(dd); }
  dd.textContent = value;
}

function showMeters(st) {
  const e = st.engine || {};
  const steps = e.step_ms || {};
  meter('frames', e.frames ?? '–');
  meter('step p50 / p99', `${fmt(steps.p50)} / ${fmt(steps.p99)} ms (frame 40 ms)`);
  meter('underruns', `${e.underruns ?? '–'} (${fmt(e.underrun_ms, 0)} ms)`);
  meter('ring fill', `${fmt(e.ring_fill_ms, 0)} / ${e.buffer_ms ?? '–'} ms`);
  meter('status', `${st.control.paused ? 'paused' : 'playing'}${st.control.muted ? ', muted' : ''}${st.control.style_pending ? ', style pending' : ''}`);
  meter('OSC received / rejected', `${st.osc.received} / ${st.osc.rejected}`);
  if (e.web) meter('studio shed / audio dropped', `${e.web.shed} / ${e.web.audio_dropped}`);
  const a = studio.audio;
  const w = a.worklet;
  meter('page audio', a.on ? `${w.frames ?? 0} frames in, ${fmt((w.queued ?? 0) / 48, 0)} ms queued, ${w.underflows ?? 0} underflows, ${a.gaps} lost` : 'off (press Listen)');
  const bar = $('ring-bar');
  const frac = e.buffer_ms ? Math.min(1, e.ring_fill_ms / e.buffer_ms) : 0;
  bar.style.width = `${(100 * frac).toFixed(1)}%`;
  bar.style.background = frac < 0.34 ? 'var(--bad)' : frac < 0.67 ? 'var(--warn)' : 'var(--ok)';
  $('model').textContent = `${e.synthetic ? 'SYNTHETIC model' : String(e.model || '').split('/').pop()} on ${e.provider || '?'}`;
}

// ---------------------------------------------------------------- piano roll
function addFrames(frames) {
  const last = studio.frames.length ? studio.frames[studio.frames.length - 1].frame : -1;
  for (const f of frames) if (f.frame > last) studio.frames.push(f);
  if (studio.frames.length > ROLL_FRAMES) studio.frames.splice(0, studio.frames.length - ROLL_FRAMES);
}

function drawRoll() {
  const c = $('roll');
  const g = c.getContext('2d');
  const W = c.width, H = c.height;
  const pitchH = 3, top = 0, notesH = (ROLL_HIGH - ROLL_LOW + 1) * pitchH;
  const rowY = (p) => top + (ROLL_HIGH - Math.max(ROLL_LOW, Math.min(ROLL_HIGH, p))) * pitchH;
  const drumsY = notesH + 6, styleY = drumsY + 14, cfgY = styleY + 14, cfgH = H - cfgY - 2;
  const dx = W / ROLL_FRAMES;
  g.fillStyle = '#0e1014'; g.fillRect(0, 0, W, H);
  g.fillStyle = '#151922';
  for (let p = ROLL_LOW; p <= ROLL_HIGH; p++) if ([1, 3, 6, 8, 10].includes(p % 12)) g.fillRect(0, rowY(p), W, pitchH);
  g.fillStyle = '#232836';
  for (let p = 24; p <= ROLL_HIGH; p += 12) g.fillRect(0, rowY(p) + pitchH - 1, W, 1);
  const frames = studio.frames;
  const x0 = W - frames.length * dx;
  const bins = studio.desc ? studio.desc.cfg_bins : [41, 41, 9];
  let prevStyle = null;
  frames.forEach((f, i) => {
    const x = x0 + i * dx;
    const style = JSON.stringify(f.style_tokens);
    if (prevStyle !== null && style !== prevStyle) {
      g.fillStyle = '#d46cff'; g.fillRect(x, 0, 2, notesH); g.fillRect(x, styleY, 3, 10);
    }
    prevStyle = style;
    const cell = (pitches, color) => {
      g.fillStyle = color;
      for (const p of pitches) g.fillRect(x, rowY(p), Math.ceil(dx), pitchH);
    };
    cell(f.sustained || [], '#4cc38a');
    cell(f.free || [], '#5fb3ff');
    cell(f.onsets || [], '#ffe066');
    g.fillStyle = f.drums === 1 ? '#ff8c42' : f.drums === 0 ? '#3a2a20' : '#1b1e26';
    g.fillRect(x, drumsY, Math.ceil(dx), 10);
    if (f.paused || f.muted) { g.fillStyle = 'rgba(0,0,0,0.45)'; g.fillRect(x, 0, Math.ceil(dx), notesH); }
    (f.cfg_bins || []).forEach((b, k) => {
      const lane = cfgH / 3;
      const y = cfgY + k * lane + lane - 1 - (b / Math.max(1, bins[k] - 1)) * (lane - 2);
      g.fillStyle = ['#c0c4cc', '#9aa0ad', '#767c8a'][k];
      g.fillRect(x, y, Math.ceil(dx), 2);
    });
  });
  g.fillStyle = '#8a90a0'; g.font = '10px system-ui';
  for (let p = 24; p <= ROLL_HIGH; p += 12) g.fillText(`C${p / 12 - 1}`, 2, rowY(p) + pitchH - 1);
  g.fillText('drums', 2, drumsY + 9); g.fillText('style', 2, styleY + 9); g.fillText('cfg', 2, cfgY + 9);
}

// ------------------------------------------------------------------- status
function onStatus(msg) {
  const st = msg.status;
  studio.status = st;
  studio.statusCount += 1;
  addFrames(msg.frames || []);
  document.querySelectorAll('[data-status]').forEach((w) => w.show && w.show(getPath(st, w.dataset.status)));
  document.querySelectorAll('#slots .row').forEach((row) => row.show(st.control.slots[Number(row.dataset.slot)]));
  const game = st.game;
  if (game) {
    beatClock = { beat: game.beat, bpm: game.bpm, bpb: game.beats_per_bar, at: performance.now() };
    document.querySelectorAll('[data-rtpc]').forEach((s) => s.show(game.rtpc[s.dataset.rtpc]?.target));
    document.querySelectorAll('[data-state]').forEach((b) => {
      b.classList.toggle('active', b.dataset.state === game.state);
      b.classList.toggle('waiting', game.waiting.includes(b.dataset.state));
    });
    document.querySelectorAll('[data-trigger]').forEach((b) => b.classList.toggle('active', game.active_triggers.includes(b.dataset.trigger)));
  }
  showMeters(st);
  drawRoll();
}

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  studio.ws = ws;
  ws.onopen = () => { studio.connected = true; $('conn').textContent = 'connected'; $('conn').className = 'pill on'; say(''); };
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type === 'status') onStatus(msg);
    else if (msg.type === 'error') {
      studio.errors.push(msg);
      if (studio.errors.length > 50) studio.errors.shift();
      say(`${msg.address || 'message'} refused: ${msg.reason}`);
    }
  };
  ws.onclose = () => {
    studio.connected = false;
    $('conn').textContent = 'disconnected'; $('conn').className = 'pill off';
    setTimeout(connect, 1000);
  };
}

// ---------------------------------------------------------------------- audio
let audio = null;  // {ctx, node, ws}
async function startAudio() {
  const rate = studio.desc.sample_rate;
  const ctx = new AudioContext({ sampleRate: rate, latencyHint: 'interactive' });
  await ctx.audioWorklet.addModule('/static/pcm-worklet.js');
  const node = new AudioWorkletNode(ctx, 'pcm-player', { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2] });
  node.connect(ctx.destination);
  node.port.onmessage = (e) => { studio.audio.worklet = e.data; };
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/audio`);
  ws.binaryType = 'arraybuffer';
  let lastSeq = null;
  ws.onmessage = (e) => {
    const buf = e.data;
    const v = new DataView(buf);
    // PCM stream packet (docs/pcm-stream.md): "MRTA", version, header size, sequence, rate, channels, format, count
    const magic = String.fromCharCode(v.getUint8(0), v.getUint8(1), v.getUint8(2), v.getUint8(3));
    const headerSize = v.getUint16(6, true), seq = v.getUint32(8, true), channels = v.getUint16(16, true);
    const format = v.getUint16(18, true), count = v.getUint32(20, true);
    if (magic !== 'MRTA' || channels !== 2 || format !== 1 || v.getUint32(12, true) !== rate) { studio.audio.bad += 1; return; }
    if (lastSeq !== null) studio.audio.gaps += (seq - lastSeq - 1) >>> 0;
    lastSeq = seq;
    studio.audio.packets += 1;
    const samples = new Float32Array(buf.slice(headerSize, headerSize + count * channels * 4));
    node.port.postMessage(samples, [samples.buffer]);
  };
  ws.onclose = () => { if (audio && audio.ws === ws) stopAudio(); };
  await ctx.resume();
  audio = { ctx, node, ws };
  studio.audio.on = true;
  studio.audio.contextRate = ctx.sampleRate;
  if (ctx.sampleRate !== rate) say(`this browser plays at ${ctx.sampleRate} Hz, not ${rate} Hz: pitch and speed will be off`);
  $('listen').textContent = '■ Stop';
  $('listen').classList.add('active');
}

function stopAudio() {
  if (!audio) return;
  const { ctx, ws } = audio;
  audio = null;
  studio.audio.on = false;
  ws.close();
  ctx.close();
  $('listen').textContent = '▶ Listen';
  $('listen').classList.remove('active');
}

// ----------------------------------------------------------------------- start
async function main() {
  const desc = await (await fetch('/api/studio.json')).json();
  studio.desc = desc;
  const byAddress = new Map(desc.routes.map((r) => [r.address, r]));
  buildSlots(desc, byAddress);
  buildGame(desc, byAddress);
  buildKeyboard(byAddress);
  for (const route of desc.routes) {
    if (route.query || SPECIAL.has(route.address)) continue;
    const box = document.querySelector(`.routes[data-section="${route.section}"]`) || $('panel-output').querySelector('.routes');
    const row = genericWidget(route);
    if (route.address === TEMPO && desc.config && row.fields) {
      row.fields[0].value = desc.config.bpm;
      if (row.fields[1]) row.fields[1].value = desc.config.beats_per_bar;
    }
    box.append(row);
  }
  $('listen').addEventListener('click', () => {
    (audio ? Promise.resolve(stopAudio()) : startAudio()).catch((e) => say(`audio: ${e.message}`));
  });
  requestAnimationFrame(showBeat);
  drawRoll();
  connect();
  studio.ready = true;
}

main().catch((e) => say(`studio failed to start: ${e.message}`));
