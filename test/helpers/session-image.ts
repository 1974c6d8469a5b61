import { SESSION_IMAGE } from '../../controller/runtime/session-security.js';

/**
 * The session image the tests start and hand to the controllers they launch: `SESSION_IMAGE` when set (so two
 * checkouts on one engine can each test their own build), else the image scripts/build-images.sh builds.
 */
export const TEST_SESSION_IMAGE = process.env.SESSION_IMAGE || SESSION_IMAGE;
