// Runtime validation of Prometheus Operator objects against the operator's CRD schemas, as compiled
// into @kubernetes-models/prometheus-operator (types, required fields, enums, patterns such as the
// Duration format). Unknown fields are caught by the TypeScript check (checks.ts, tsc).
//   node validate.mjs objects.json   ->  prints {"checked": N, "errors": [...]} and exits 1 on errors
import { readFileSync } from "node:fs";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const kinds = { ServiceMonitor, PodMonitor, PrometheusRule };
const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
const errors = [];
let checked = 0;
for (const object of objects) {
  const Kind = kinds[object.kind];
  if (!Kind) {
    errors.push({ name: object.metadata?.name, kind: object.kind, error: "no operator schema for this kind" });
    continue;
  }
  try {
    new Kind(object).validate();
    checked += 1;
  } catch (err) {
    errors.push({ name: object.metadata?.name, kind: object.kind, error: String(err?.message ?? err), details: err?.errors });
  }
}
console.log(JSON.stringify({ checked, errors }));
process.exit(errors.length ? 1 : 0);
