// The component's icons, as inline SVG: a font glyph (U+26F6 for full screen) depends on the
// visitor's fonts, and Debian's Chromium, among others, draws it as an empty box. SVG draws the
// same everywhere, follows the button's colour (currentColor) and needs no request.

/** Four corner brackets: the usual "full screen" sign. */
export const FULLSCREEN_ICON =
  '<svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false" ' +
  'fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">' +
  '<path d="M4 9V4h5M15 4h5v5M20 15v5h-5M9 20H4v-5"/></svg>';
