// Lazy screens that can be loaded ahead of time. A screen whose chunk has
// arrived renders directly instead of suspending: React holds a revealed
// Suspense boundary back for up to 300 ms, so suspending on a chunk that is
// already there would cost a visible delay on every navigation.

import { lazy, type ComponentType } from "react";

export type PreloadableComponent<P> = ComponentType<P> & { preload: () => Promise<unknown> };

export function lazyWithPreload<P extends object>(factory: () => Promise<{ default: ComponentType<P> }>): PreloadableComponent<P> {
  let loaded: ComponentType<P> | undefined;
  let promise: Promise<{ default: ComponentType<P> }> | undefined;
  const load = () =>
    (promise ??= factory().then(
      (m) => {
        loaded = m.default;
        return m;
      },
      (e) => {
        promise = undefined; // a failed chunk load may be retried
        throw e;
      },
    ));
  const Lazy = lazy(load);
  const Component = (props: P) => {
    const C = loaded ?? Lazy;
    return <C {...props} />;
  };
  Component.preload = load;
  return Component as PreloadableComponent<P>;
}
