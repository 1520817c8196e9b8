// Shows the placeholder when a profile picture cannot be loaded (CSP forbids inline handlers, hence this file).
document.querySelectorAll('img[data-fallback]').forEach((img) => {
  const fallback = () => {
    if (img.src.endsWith(img.dataset.fallback)) return;
    img.src = img.dataset.fallback;
  };
  img.addEventListener('error', fallback, { once: true });
  if (img.complete && img.naturalWidth === 0) fallback();
});
