import { Label, MANAGED_BY } from './labels.js';
import { ownerLabel, ownerOf } from './docker-inspect.js';
import type { SessionOwner } from './session-runtime.js';

/*
 * Which of the engine's containers and volumes are a controller's (its `instance`), and whose session they hold: by
 * their labels, which the controller sets on everything it makes.
 */

/** The labels of what is made for `owner`. A pool member is labelled by its pool id only: a session id on it would be wrong once a session claims it. */
export function ownLabels(instance: string, owner: SessionOwner): Record<string, string> {
  const [key, id] = ownerLabel(owner);
  return { [Label.managedBy]: MANAGED_BY, [Label.instance]: instance, [key]: id };
}

/** The label filter that lists what the controller `instance` made. */
export function ownLabelFilter(instance: string): string[] {
  return [`${Label.managedBy}=${MANAGED_BY}`, `${Label.instance}=${instance}`];
}

/** Whether these labels are those of what the controller `instance` made for `owner`. */
export function isOwnedBy(labels: Record<string, string> | null | undefined, instance: string, owner: SessionOwner): boolean {
  if (labels?.[Label.managedBy] !== MANAGED_BY || labels[Label.instance] !== instance) return false;
  const found = ownerOf(labels);
  return found?.kind === owner.kind && ownerLabel(found)[1] === ownerLabel(owner)[1];
}
