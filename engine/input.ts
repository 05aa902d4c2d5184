/**
 * Loading a command's image option with the caller's rights and the operator's limits, in one place:
 * local paths only where the transport allows them (CLI), the configured byte and pixel caps, the
 * private-URL setting, and the request's abort signal.
 */
import type { CommandContext } from './context.ts';
import { loadImage, type LoadedImage, type LoadImageOptions } from './image.ts';
import type { ImageRef } from './schema.ts';

/** Load an image option for a command (see the module comment for what it applies). */
export function loadInputImage(
  ref: ImageRef,
  ctx: Pick<CommandContext, 'allowLocalPaths' | 'services' | 'signal'>,
  options: Partial<Omit<LoadImageOptions, 'allowLocalPaths' | 'signal'>> = {},
): Promise<LoadedImage> {
  const config = ctx.services.config;
  return loadImage(ref, {
    allowLocalPaths: ctx.allowLocalPaths,
    maxBytes: config.SOLESCOPE_MAX_IMAGE_BYTES,
    maxPixels: config.SOLESCOPE_MAX_IMAGE_PIXELS,
    signal: ctx.signal,
    ...options,
    fetch: { ...(config.SOLESCOPE_ALLOW_PRIVATE_URLS ? { allowPrivate: true } : {}), ...(options.fetch ?? {}) },
  });
}
