// AudioWorklet: plays interleaved stereo float32 frames posted by the page (PCM stream packets).
// A small jitter buffer: playback starts with PREROLL frames queued; more than MAX_QUEUED are
// dropped oldest first, so latency stays bounded; an empty queue plays silence (counted).
const PREROLL = 3840;      // 80 ms at 48 kHz: two 40 ms packets
const MAX_QUEUED = 24000;  // 500 ms

class PcmPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];      // Float32Array chunks, interleaved L R
    this.offset = 0;      // read position (in samples) inside queue[0]
    this.queued = 0;      // frames queued
    this.playing = false;
    this.stats = { packets: 0, frames: 0, played: 0, underflows: 0, dropped: 0, peak: 0 };
    this.sinceReport = 0;
    this.port.onmessage = (e) => this.receive(e.data);
  }

  receive(samples) {
    this.queue.push(samples);
    this.queued += samples.length / 2;
    this.stats.packets += 1;
    this.stats.frames += samples.length / 2;
    let peak = this.stats.peak;
    for (let i = 0; i < samples.length; i++) { const a = Math.abs(samples[i]); if (a > peak) peak = a; }
    this.stats.peak = peak;
    while (this.queued > MAX_QUEUED && this.queue.length > 1) {
      const old = this.queue.shift();
      this.queued -= (old.length - this.offset) / 2;
      this.stats.dropped += (old.length - this.offset) / 2;
      this.offset = 0;
    }
  }

  process(inputs, outputs) {
    const [left, right] = outputs[0];
    const n = left.length;
    if (!this.playing && this.queued >= PREROLL) this.playing = true;
    let i = 0;
    if (this.playing) {
      while (i < n && this.queue.length) {
        const chunk = this.queue[0];
        while (i < n && this.offset < chunk.length) {
          left[i] = chunk[this.offset];
          right[i] = chunk[this.offset + 1];
          this.offset += 2;
          i += 1;
        }
        if (this.offset >= chunk.length) { this.queue.shift(); this.offset = 0; }
      }
      this.queued -= i;
      this.stats.played += i;
      if (i < n) { this.stats.underflows += 1; this.playing = false; }
    }
    for (; i < n; i++) { left[i] = 0; right[i] = 0; }
    this.sinceReport += n;
    if (this.sinceReport >= 12000) {  // four reports a second
      this.sinceReport = 0;
      this.port.postMessage({ ...this.stats, queued: this.queued });
    }
    return true;
  }
}

registerProcessor('pcm-player', PcmPlayer);
