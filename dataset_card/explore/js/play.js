// A tap on a clip point plays it (details.js has already loaded it on the selection).
if (cb_data.source !== clips) return;
const player = document.getElementById("player");
if (player && player.src) player.play().catch((e) => console.warn("playback: " + e.message));
