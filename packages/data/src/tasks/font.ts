// Text in the synthetic images is drawn with a font registered from a file path, so the pixels do not
// depend on the machine's fontconfig setup.
import { existsSync } from 'node:fs';
import { GlobalFonts } from '@napi-rs/canvas';

/** DejaVu Sans of the Debian base image (package fonts-dejavu-core). */
export const DEFAULT_FONT_PATH = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf';

const registered = new Map<string, string>();

/**
 * Registers the font file once and returns the family name to use in `ctx.font`. Each distinct file
 * gets its own alias, so two paths never share a name.
 */
export function registerTaskFont(path: string = DEFAULT_FONT_PATH): string {
  const known = registered.get(path);
  if (known) return known;
  if (!existsSync(path)) {
    throw new Error(
      `font file ${path} not found: the synthetic tasks draw text with a font file for reproducible pixels; ` +
        'install fonts-dejavu-core or pass fontPath',
    );
  }
  const family = `OThinkTaskFont${registered.size}`;
  if (!GlobalFonts.registerFromPath(path, family)) throw new Error(`font file ${path} could not be loaded`);
  registered.set(path, family);
  return family;
}
