// JSONPath as AWS Step Functions evaluates it, for aws-local-stepfunctions.
//
// aws-local-stepfunctions 3.0.0 queries every path with jsonpath-plus and `wrap: false`, so an
// indefinite path (a filter `[?(...)]`, a wildcard `*`, a deep scan `..`, a union or a slice)
// comes back unwrapped when it matches one value and `undefined` (a States.Runtime error) when it
// matches none. AWS (Jayway JsonPath) always answers an indefinite path with a list: `[x]` for one
// match, `[]` for none. ferry's state machine depends on that (`$[?(@.status == 'failed')]`,
// `$[*].failed[*]` in the Map ResultSelectors). runner.mjs loads this module in place of
// jsonpath-plus for aws-local-stepfunctions only; definite paths are evaluated unchanged.
import { JSONPath as jsonPathPlus } from 'jsonpath-plus';

// Outside quoted names: `*`, `..`, `[?`, or a bracket holding `,` or `:` (union, slice).
export function isIndefinite(path) {
  const unquoted = path.replace(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g, "''");
  return /\*|\.\.|\[\s*\?|\[[^\]]*[,:][^\]]*\]/.test(unquoted);
}

export function JSONPath(options, ...rest) {
  if (options && typeof options === 'object' && options.wrap === false && typeof options.path === 'string' && isIndefinite(options.path)) {
    return jsonPathPlus({ ...options, wrap: true }, ...rest);
  }
  return jsonPathPlus(options, ...rest);
}
