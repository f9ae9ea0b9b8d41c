// The component's own styles (inside its shadow root, so a host page cannot break them).
export const STYLE = `
:host { display: block; position: relative; width: 100%; height: 100%; min-height: 200px;
  background: var(--foto3d-background, #eef0f3); overflow: hidden; contain: content; }
.stage { position: absolute; inset: 0; }
canvas { display: block; width: 100%; height: 100%; touch-action: none; outline: none; cursor: grab; }
canvas:active { cursor: grabbing; }
/* keyboard users see where they are (arrows turn, + and - zoom); a mouse click shows no ring */
canvas:focus-visible { outline: 3px solid #1a73e8; outline-offset: -3px; }
.fullscreen:focus-visible { outline: 3px solid #1a73e8; outline-offset: 2px; }
.poster { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain; pointer-events: none; }
.progress { position: absolute; left: 12%; right: 12%; bottom: 16px; height: 4px; border-radius: 2px;
  background: rgba(0, 0, 0, 0.12); overflow: hidden; }
.progress .bar { height: 100%; width: 0; background: rgba(0, 0, 0, 0.55); transition: width 0.2s; }
.progress.indeterminate .bar { width: 30%; animation: slide 1.2s infinite linear; }
@keyframes slide { from { margin-left: -30%; } to { margin-left: 100%; } }
.fullscreen { position: absolute; right: 10px; bottom: 10px; width: 36px; height: 36px; border: 0;
  border-radius: 6px; background: rgba(255, 255, 255, 0.8); color: #222; padding: 0; cursor: pointer;
  display: flex; align-items: center; justify-content: center; }
.fullscreen svg { display: block; }
.card { position: absolute; inset: 0; display: flex; flex-direction: column; align-items: center;
  justify-content: center; gap: 6px; font: 15px system-ui, sans-serif; color: #555; background: #f4f5f7; }
.card[hidden], .fullscreen[hidden], .progress[hidden], .poster[hidden] { display: none; }
.hotspots { position: absolute; inset: 0; pointer-events: none; }
.hotspot { position: absolute; left: 0; top: 0; margin: -12px 0 0 8px; padding: 2px 8px; border-radius: 10px;
  font: 12px system-ui, sans-serif; background: rgba(255, 255, 255, 0.9); color: #222; white-space: nowrap;
  pointer-events: auto; }
.hotspot[hidden] { display: none; }
`;
