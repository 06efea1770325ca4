// charts.ts: the dashboard's time-series charts (uPlot), sized to their
// boxes and redrawn at most once per animation frame.
import uPlot from "uplot";

/** The time window drawn, in seconds. */
export const WINDOW_S = 300;

export interface SeriesSpec {
  label: string;
  color: string;
  fill?: string;
  unit: string;
  /** Axis range fixed to [0, max] (percentages), or auto when absent. */
  max?: number;
}

export class TimeChart {
  private readonly plot: uPlot;
  private readonly box: HTMLElement;

  constructor(box: HTMLElement, series: SeriesSpec[]) {
    this.box = box;
    const fmt = (unit: string) => (_u: uPlot, v: number | null) =>
      v === null || v === undefined ? "–" : `${v.toFixed(v >= 100 ? 0 : 1)}${unit}`;
    const max = series[0]?.max;
    const opts: uPlot.Options = {
      width: Math.max(box.clientWidth, 200),
      height: Math.max(box.clientHeight, 120),
      cursor: { drag: { x: false, y: false } },
      legend: { show: series.length > 1, live: false },
      // Always the last five minutes, so a wall screen reads at a glance.
      scales: { x: { time: true, range: () => { const t = Date.now() / 1000; return [t - WINDOW_S, t]; } }, y: max !== undefined ? { range: [0, max] } : { range: (_u, _min, mx) => [0, Math.max(mx * 1.1, 1)] } },
      axes: [
        {
          stroke: "#8b98a5", grid: { stroke: "#263241", width: 1 }, ticks: { stroke: "#263241" },
          // One line of HH:MM per tick, far enough apart for a phone.
          space: 70,
          values: (_u: uPlot, splits: number[]) => splits.map(v =>
            new Date(v * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })),
        },
        { stroke: "#8b98a5", grid: { stroke: "#263241", width: 1 }, ticks: { stroke: "#263241" }, size: 44 },
      ],
      series: [{}, ...series.map(s => ({
        label: s.label, stroke: s.color, width: 2, fill: s.fill, value: fmt(s.unit),
        points: { show: false },
      }))],
    };
    this.plot = new uPlot(opts, [[], ...series.map(() => [])] as uPlot.AlignedData, box);
    new ResizeObserver(() => this.resize()).observe(box);
  }

  private resize(): void {
    const w = this.box.clientWidth, h = this.box.clientHeight;
    // The legend takes part of the box's height.
    const legend = this.box.querySelector(".u-legend") as HTMLElement | null;
    const lh = legend ? legend.offsetHeight : 0;
    if (w > 0 && h > 0) this.plot.setSize({ width: w, height: Math.max(h - lh, 80) });
  }

  /** xs in seconds since the Unix epoch; one array per series. */
  set(xs: number[], ys: (number | null)[][]): void {
    this.plot.setData([xs, ...ys] as uPlot.AlignedData);
  }
}
