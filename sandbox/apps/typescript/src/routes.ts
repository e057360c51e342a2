/**
 * The API's routes and the strangler decision: per request, green serves a feature area with its
 * own code only if that area's flag and the rollout flag are on for it; otherwise the request is
 * forwarded to blue (Rails). Pure: no I/O. Mirrors cutover_kit.flags.model.
 */
import { HttpError } from './errors';

export const FEATURES = ['users', 'orders'] as const;
export type Feature = (typeof FEATURES)[number];
export const FEATURE_FLAG_PREFIX = 'green.feature.';
export const ROLLOUT_FLAG = 'green.rollout';
export const EXPERIMENT_FLAG = 'experiment.order_summary';
export const EXPERIMENT_VARIANTS = ['control', 'treatment'] as const;
export const RAILS = 'rails';
export const TYPESCRIPT = 'typescript';
export type Impl = typeof RAILS | typeof TYPESCRIPT;

export const VIA_ROUTER_HEADER = 'x-cutover-via';
export const FORCE_SERVE_HEADER = 'x-cutover-serve';
export const USER_ID_HEADER = 'x-user-id';

export type RouteName = 'getUser' | 'createUser' | 'getOrder' | 'listUserOrders' | 'createOrder' | 'getOrderLineItems';

export interface ApiRoute {
  name: RouteName;
  method: 'GET' | 'POST';
  pattern: RegExp;
  /** The label of metrics and logs: one per route, whatever the ids. */
  template: string;
  successCode: number;
  /** The feature area whose flag decides who serves it. */
  feature: Feature;
}

// Ids: 1 to 18 digits, as in the Python app (a bigint never needs more; longer is "no route").
export const API_ROUTES: readonly ApiRoute[] = [
  { name: 'getUser', method: 'GET', pattern: /^\/api\/users\/(\d{1,18})$/, template: '/api/users/{id}', successCode: 200, feature: 'users' },
  { name: 'createUser', method: 'POST', pattern: /^\/api\/users$/, template: '/api/users', successCode: 201, feature: 'users' },
  { name: 'getOrder', method: 'GET', pattern: /^\/api\/orders\/(\d{1,18})$/, template: '/api/orders/{id}', successCode: 200, feature: 'orders' },
  { name: 'listUserOrders', method: 'GET', pattern: /^\/api\/users\/(\d{1,18})\/orders$/, template: '/api/users/{id}/orders', successCode: 200, feature: 'orders' },
  { name: 'createOrder', method: 'POST', pattern: /^\/api\/orders$/, template: '/api/orders', successCode: 201, feature: 'orders' },
  { name: 'getOrderLineItems', method: 'GET', pattern: /^\/api\/orders\/(\d{1,18})\/line_items$/, template: '/api/orders/{id}/line_items', successCode: 200, feature: 'orders' },
];
// The experiment's surface: green tags its own answers on this route with the user's variant.
export const EXPERIMENT_ROUTE = '/api/users/{id}/orders';

export interface RouteMatch {
  route?: ApiRoute;
  id?: number;
  /** True when some route has this path: no route for the method is then a 405, not a 404. */
  pathKnown: boolean;
}

export function matchApiRoute(method: string, path: string): RouteMatch {
  let pathKnown = false;
  for (const route of API_ROUTES) {
    const found = route.pattern.exec(path);
    if (found) {
      if (route.method === method) {
        return { route, id: found[1] === undefined ? undefined : Number(found[1]), pathKnown: true };
      }
      pathKnown = true;
    }
  }
  return { pathKnown };
}

/** The user a request is evaluated for: X-User-Id, else the user in the path, else in the body. */
export function requestUserId(header: string | undefined, route: ApiRoute, id: number | undefined, body: unknown): number | undefined {
  const trimmed = header?.trim();
  if (trimmed && /^\d+$/.test(trimmed)) {
    return Number(trimmed);
  }
  if (route.template.startsWith('/api/users/{id}')) {
    return id;
  }
  if (typeof body === 'object' && body !== null && !Array.isArray(body)) {
    const userId = (body as Record<string, unknown>).user_id;
    if (typeof userId === 'number' && Number.isInteger(userId) && userId > 0) {
      return userId;
    }
  }
  return undefined;
}

/** What green asks its flag provider per request (flagd file in-process, or Unleash). */
export interface FlagEvaluator {
  readonly backend: string;
  featureOn(feature: Feature, userId: number | undefined, viaRouter: boolean): boolean | Promise<boolean>;
  rolloutOn(userId: number | undefined, viaRouter: boolean): boolean | Promise<boolean>;
  experimentVariant(userId: number | undefined): string | Promise<string>;
  /** Extra facts for /__flags (source, provider status, loaded percentages). */
  loadedState(): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export function servesNewCode(featureOn: boolean, rolloutOn: boolean): boolean {
  return featureOn && rolloutOn;
}

/**
 * Green's choice for one request: TYPESCRIPT (its own code) or RAILS (forward to blue).
 * `forced` (X-Cutover-Serve) counts only on direct requests, never on routed ones.
 */
export async function decideImpl(evaluator: FlagEvaluator | undefined, route: ApiRoute, userId: number | undefined,
                                 viaRouter: boolean, forced: string | undefined): Promise<Impl> {
  if (forced !== undefined && !viaRouter) {
    if (forced !== TYPESCRIPT && forced !== RAILS) {
      throw new HttpError(400, `X-Cutover-Serve must be ${TYPESCRIPT} or ${RAILS}, got ${JSON.stringify(forced)}`);
    }
    return forced;
  }
  if (evaluator === undefined) {
    return RAILS; // green without flags would be an accident: Rails is the safe answer
  }
  const featureOn = await evaluator.featureOn(route.feature, userId, viaRouter);
  // Skip the second evaluation when the feature is off: the answer is Rails either way.
  return featureOn && servesNewCode(featureOn, await evaluator.rolloutOn(userId, viaRouter)) ? TYPESCRIPT : RAILS;
}

/** The /__flags report: each feature as evaluated now for a direct request without a user. */
export async function flagsReport(evaluator: FlagEvaluator | undefined): Promise<Record<string, unknown>> {
  if (evaluator === undefined) {
    return { color: 'green', evaluates_flags: false, backend: null,
             features: Object.fromEntries(FEATURES.map((f) => [f, false])), serves_rails: true };
  }
  const features: Record<string, boolean> = {};
  for (const feature of FEATURES) {
    features[feature] = Boolean(await evaluator.featureOn(feature, undefined, false));
  }
  return { color: 'green', backend: evaluator.backend, evaluates_flags: true, features,
           serves_rails: !Object.values(features).some(Boolean), ...(await evaluator.loadedState()) };
}
