// The type every generated gen/<dashboard>.ts must satisfy: Grafana's published Dashboard type
// (@grafana/schema), read as the JSON Grafana stores.
import type { AnnotationQuery, Dashboard } from "@grafana/schema";

// The schema declares TypeScript enums (FieldColorModeId, ThresholdsMode, MappingType, ...); a
// JSON file holds their values as plain strings. `${E}` is the union of a string enum's values,
// so each enum is checked against exactly the values Grafana accepts.
type Stored<T> = T extends string
  ? `${T}`
  : T extends readonly (infer U)[]
    ? Stored<U>[]
    : T extends object
      ? { [K in keyof T]: Stored<T[K]> }
      : T;

// Fields of the Prometheus datasource's annotation query, which the schema's AnnotationQuery
// leaves to the datasource plugin (its `target` type is the Grafana datasource's).
interface PrometheusAnnotation extends Stored<AnnotationQuery> {
  expr?: string;
  step?: string;
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
}

export type StoredDashboard = Omit<Stored<Dashboard>, "annotations"> & {
  annotations?: { list?: PrometheusAnnotation[] };
};
