// The console's only script, and optional: without it the "Update
// selection" button does the same. A checkbox saves the page's selection
// as soon as it changes, so a selection survives paging.
document.addEventListener('DOMContentLoaded', () => {
  const form = document.getElementById('page-selection');
  if (!form) return;
  form.addEventListener('change', async (e) => {
    if (e.target.name !== 'checked') return;
    const body = new URLSearchParams(new FormData(form));
    const r = await fetch(form.action, { method: 'POST', body, redirect: 'manual' });
    if (r.type === 'opaqueredirect' || r.ok) {
      const count = document.getElementById('selected-count');
      const n = parseInt(count.textContent, 10) || 0;
      count.textContent = String(n + (e.target.checked ? 1 : -1));
    }
  });
});
