// Runs executions of a Step Functions definition on aws-local-stepfunctions (an existing ASL
// interpreter) and prints what happened as JSON. Used by tests/src/state_machine.rs.
//
//   node runner.mjs < job.json > result.json
//
// job: {
//   "modules": "<dir holding aws-local-stepfunctions and @aws-sdk/client-eventbridge>",
//   "definition": { ...ASL, placeholders already substituted... },
//   "inputs": [ ...one execution per input, all started at once... ],
//   "region": "us-east-1",
//   "eventsEndpoint": "http://127.0.0.1:PORT",   // EventBridge for arn:aws:states:::events:putEvents
//   "waitMilliseconds": 200,                      // every Wait state waits this long instead
//   "retryMilliseconds": 100                      // every Retry pauses this long instead
// }
// Task states with Lambda ARNs invoke through the AWS SDK's Lambda client: point
// AWS_ENDPOINT_URL_LAMBDA at the Invoke API (with AWS_REGION and credentials in the environment).
// They are invoked as Step Functions invokes them (invokeLambda below): one attempt, and a
// failed Invoke call is the error `Lambda.<exception>` that Retry and Catch route on.
//
// result: { "executions": [ { "name", "status": "SUCCEEDED" | "FAILED", "output", "error",
//   "cause", "stateTransitions", "history": [ {type, state, index?, error?, cause?, input?, output?} ] } ] }
//
// State transitions are counted as AWS bills them: one per state entered (states inside Map
// iterations included, the Map state itself too) and one per retry of a state.
import { createRequire, registerHooks } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const job = JSON.parse(readFileSync(0, 'utf8'));
const modules = job.modules;
const interpreterURL = pathToFileURL(join(modules, 'aws-local-stepfunctions/build/main.node.esm.js')).href;
const interpreterDir = pathToFileURL(join(modules, 'aws-local-stepfunctions/')).href;
const shimURL = new URL('./aws-jsonpath.mjs', import.meta.url).href;

// aws-local-stepfunctions gets AWS's JSONPath semantics (see aws-jsonpath.mjs); the shim itself
// gets the real jsonpath-plus, resolved from the interpreter's own node_modules.
registerHooks({
  resolve(specifier, context, nextResolve) {
    if (specifier === 'jsonpath-plus' && context.parentURL?.startsWith(interpreterDir)) {
      return { url: shimURL, shortCircuit: true };
    }
    if (specifier === 'jsonpath-plus' && context.parentURL === shimURL) {
      return nextResolve(specifier, { ...context, parentURL: interpreterURL });
    }
    return nextResolve(specifier, context);
  },
});

const { StateMachine } = await import(interpreterURL);
const { EventBridgeClient, PutEventsCommand } = await import(
  pathToFileURL(join(modules, '@aws-sdk/client-eventbridge/dist-cjs/index.js')).href
);

/** Every state of the definition, Map and Parallel sub-machines included: [name, state]. */
function allStates(machine) {
  const found = [];
  for (const [name, state] of Object.entries(machine.States ?? {})) {
    found.push([name, state]);
    for (const inner of [state.ItemProcessor, state.Iterator, ...(state.Branches ?? [])]) {
      if (inner) found.push(...allStates(inner));
    }
  }
  return found;
}

function named(name, message) {
  const error = new Error(message);
  error.name = name;
  return error;
}

// Step Functions' optimized integration arn:aws:states:::events:putEvents: a JSON Detail is
// sent as its string, failed entries fail the task (EventBridge.FailedEntry), service errors
// are named EventBridge.<exception>.
const eventBridge = new EventBridgeClient({ region: job.region, endpoint: job.eventsEndpoint });
async function putEvents(parameters) {
  const entries = (parameters.Entries ?? []).map((entry) => ({
    ...entry,
    Detail: entry.Detail === undefined || typeof entry.Detail === 'string' ? entry.Detail : JSON.stringify(entry.Detail),
  }));
  let answer;
  try {
    answer = await eventBridge.send(new PutEventsCommand({ Entries: entries }));
  } catch (error) {
    throw named(`EventBridge.${error.name}`, error.message);
  }
  if (answer.FailedEntryCount > 0) {
    throw named('EventBridge.FailedEntry', JSON.stringify(answer.Entries));
  }
  return { Entries: answer.Entries, FailedEntryCount: answer.FailedEntryCount };
}
const integrations = { 'arn:aws:states:::events:putEvents': putEvents };

// Lambda Tasks, invoked as Step Functions invokes them. The interpreter's own Lambda client uses
// the SDK's default retries (3 attempts: a 5xx answer would be retried inside the Task, invoking
// the function again unseen by the state machine) and names a failed Invoke by the bare
// exception (`ServiceException`), which no `Lambda.*` retrier matches. Step Functions reports a
// Lambda service failure as `Lambda.<exception>` (`Lambda.ServiceException`, …) and a call
// that got no answer at all as `Lambda.SdkClientException`. A function error is named by its
// errorType, with the interpreter's own cause, as before.
const { LambdaClient, InvokeCommand } = createRequire(join(modules, 'aws-local-stepfunctions/package.json'))('@aws-sdk/client-lambda');
const lambda = new LambdaClient({ region: job.region, maxAttempts: 1 });
function invokeLambda(functionArn) {
  return async (input) => {
    let answer;
    try {
      answer = await lambda.send(new InvokeCommand({ FunctionName: functionArn, Payload: new TextEncoder().encode(JSON.stringify(input)) }));
    } catch (error) {
      throw named(error.$metadata?.httpStatusCode ? `Lambda.${error.name}` : 'Lambda.SdkClientException', error.message);
    }
    const payload = answer.Payload?.length ? JSON.parse(new TextDecoder().decode(answer.Payload)) : null;
    if (answer.FunctionError) {
      const error = new Error(`${payload?.errorType}: ${payload?.errorMessage}`, { cause: payload });
      error.name = payload?.errorType ?? 'Lambda.Unknown';
      throw error;
    }
    return payload;
  };
}

const taskResourceLocalHandlers = {};
const waitTimeOverrides = {};
const retryIntervalOverrides = {};
for (const [name, state] of allStates(job.definition)) {
  if (state.Type === 'Task' && typeof state.Resource === 'string' && state.Resource.startsWith('arn:aws:lambda:')) {
    taskResourceLocalHandlers[name] = invokeLambda(state.Resource);
  }
  if (state.Type === 'Task' && typeof state.Resource === 'string' && state.Resource.startsWith('arn:aws:states:::')) {
    taskResourceLocalHandlers[name] =
      integrations[state.Resource] ??
      (async () => {
        throw named('States.Runtime', `${state.Resource} is not available locally (tests/stepfunctions/runner.mjs)`);
      });
  }
  if (state.Type === 'Wait') waitTimeOverrides[name] = job.waitMilliseconds ?? 0;
  if (state.Retry) retryIntervalOverrides[name] = job.retryMilliseconds ?? 0;
}

const machine = new StateMachine(job.definition);

function brief(event) {
  const entry = { type: event.type };
  if (event.state) {
    entry.state = event.state.name;
    if (event.type === 'StateEntered') entry.input = event.state.input;
    if (event.type === 'StateExited') entry.output = event.state.output;
  }
  if (event.index !== undefined) entry.index = event.index;
  if (event.parentState) entry.parentState = event.parentState.name;
  if (event.Error !== undefined) entry.error = event.Error;
  if (event.Cause !== undefined) entry.cause = event.Cause;
  if (event.type === 'ExecutionSucceeded') entry.output = event.output;
  return entry;
}

async function execute(input, number) {
  const name = `ferry-local-${process.pid}-${number}`;
  const context = {
    Execution: { Id: `arn:aws:states:${job.region}:123456789012:execution:ferry-local:${name}`, Name: name },
    StateMachine: { Id: `arn:aws:states:${job.region}:123456789012:stateMachine:ferry-local`, Name: 'ferry-local' },
  };
  const execution = machine.run(input, {
    overrides: { taskResourceLocalHandlers, waitTimeOverrides, retryIntervalOverrides },
    context,
  });
  const history = [];
  const logged = (async () => {
    for await (const event of execution.eventLogs) history.push(brief(event));
  })();
  let status = 'SUCCEEDED';
  let output = null;
  try {
    output = await execution.result;
  } catch {
    status = 'FAILED';
  }
  await logged;
  const end = history.find((e) => e.type === 'ExecutionFailed' || e.type === 'ExecutionSucceeded');
  const stateTransitions = history.filter((e) => e.type === 'StateEntered' || e.type === 'StateRetried').length;
  return {
    name,
    status,
    output,
    error: status === 'FAILED' ? end?.error ?? null : null,
    cause: status === 'FAILED' ? end?.cause ?? null : null,
    stateTransitions,
    history,
  };
}

const executions = await Promise.all(job.inputs.map((input, i) => execute(input, i)));
process.stdout.write(JSON.stringify({ executions }) + '\n');
