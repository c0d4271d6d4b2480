/**
 * Types the generated checks (generated/*.ts, written by tests/bundle/grafana_check.py) assign
 * the dashboards to. Everything comes from @grafana/schema, Grafana's published schema, except
 * the Prometheus query shape: @grafana/schema 12.x no longer ships the Prometheus dataquery, so
 * PrometheusQuery below is the subset of it these dashboards use, written out by hand.
 *
 * Generated values are object literals, so TypeScript's excess-property check rejects unknown or
 * misspelled keys, and missing required ones fail as usual.
 */
import type { Dashboard, DataQuery } from '@grafana/schema';
import type {
  FieldConfig as TimeSeriesFieldConfig,
  Options as TimeSeriesOptions,
} from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';
import type { Options as StatOptions } from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';
import type { Options as BarGaugeOptions } from '@grafana/schema/dist/esm/raw/composable/bargauge/panelcfg/x/BarGaugePanelCfg_types.gen';
import type {
  FieldConfig as TableFieldConfig,
  Options as TableOptions,
} from '@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen';
import type {
  FieldConfig as StateTimelineFieldConfig,
  Options as StateTimelineOptions,
} from '@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen';

/**
 * Grafana's schema types use TypeScript enums (ThresholdsMode.Absolute...); dashboard JSON holds
 * their values ("absolute"). Json<T> replaces every string enum by the union of its values,
 * recursively. Numeric enums need nothing: a numeric literal is assignable to them.
 */
export type Json<T> = T extends string
  ? string extends T
    ? string
    : `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Json<U>>
      : T extends object
        ? { [K in keyof T]: Json<T[K]> }
        : T;

export type DashboardJson = Json<Dashboard>;

/** A Prometheus panel query as these dashboards write it: always through the datasource variable. */
export interface PrometheusQuery extends DataQuery {
  datasource: { type: 'prometheus'; uid: '${datasource}' };
  expr: string;
  legendFormat?: string;
  editorMode?: 'code' | 'builder';
  range?: boolean;
  instant?: boolean;
  format?: 'time_series' | 'table' | 'heatmap';
  interval?: string;
  exemplar?: boolean;
}

/** Panel type -> its options and fieldConfig.defaults.custom (never: the panel has no custom config). */
export interface PanelTypes {
  timeseries: { options: TimeSeriesOptions; custom: TimeSeriesFieldConfig };
  stat: { options: StatOptions; custom: never };
  bargauge: { options: BarGaugeOptions; custom: never };
  table: { options: TableOptions; custom: TableFieldConfig };
  'state-timeline': { options: StateTimelineOptions; custom: StateTimelineFieldConfig };
}

export type PanelOptions<K extends keyof PanelTypes> = Json<PanelTypes[K]['options']>;
export type PanelCustom<K extends keyof PanelTypes> = Json<PanelTypes[K]['custom']>;
export type PanelTargets = Array<Json<PrometheusQuery>>;
