import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The IR verifier runs before and after every pass of `optimize` (src/ir/verify.ts),
    // in the tests and in the `ptr` processes they start.
    env: { PTR_VERIFY: '1' },
  },
});
