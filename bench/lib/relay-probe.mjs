// A probe loaded into a benchmarked relay (node --import), to tell where a
// latency tail comes from: every second it appends the process's CPU %, its
// event-loop delay (max and p99, ms), its GC pauses (count, total and
// longest, ms) and heap/RSS to BENCH_PROBE_DIR/probe-<pid>.log (default
// /tmp). A long event-loop delay with low CPU is time the relay did not get
// (the machine), with high CPU work it did, with long GC memory. Usage:
//   BENCH_RELAY_NODE_ARGS="--import ./bench/lib/relay-probe.mjs" npm run bench -- --only fanout …
// Plain JavaScript: it loads before tsx. NOT part of the product.
import { appendFileSync } from 'node:fs';
import { PerformanceObserver, monitorEventLoopDelay } from 'node:perf_hooks';

const file = `${process.env.BENCH_PROBE_DIR ?? '/tmp'}/probe-${process.pid}.log`;
const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();
let gc = { n: 0, ms: 0, max: 0 };
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gc.n++;
    gc.ms += e.duration;
    gc.max = Math.max(gc.max, e.duration);
  }
}).observe({ entryTypes: ['gc'] });
let cpu = process.cpuUsage();
setInterval(() => {
  const used = process.cpuUsage(cpu);
  cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  const ms = (ns) => (ns / 1e6).toFixed(1);
  appendFileSync(
    file,
    `${new Date().toISOString().slice(11, 23)} cpu=${Math.round((used.user + used.system) / 1e4)}% ` +
      `loop_delay_max=${ms(delay.max)} p99=${ms(delay.percentile(99))} ` +
      `gc=${gc.n} gc_ms=${gc.ms.toFixed(1)} gc_max=${gc.max.toFixed(1)} ` +
      `heap_mb=${Math.round(mem.heapUsed / 1048576)} rss_mb=${Math.round(mem.rss / 1048576)}\n`,
  );
  delay.reset();
  gc = { n: 0, ms: 0, max: 0 };
}, 1000).unref();
