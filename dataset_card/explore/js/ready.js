// Marks the moment the page is usable (the load-time benchmark and the browser test wait on it).
window.__exploreReady = performance.now();
