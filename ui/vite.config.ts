import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// Built into dist/, embedded in the mutask binary and served under /ui/ (relative asset URLs).
export default defineConfig({
  base: './',
  plugins: [preact()],
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 1500 },
});
