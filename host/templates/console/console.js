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

// A running job's page follows the job's event stream: the bar and the
// counts move with each `progress` event; at `end` the page reloads to list
// the users not applied. Without the script, the page refreshes itself.
document.addEventListener('DOMContentLoaded', () => {
  const bar = document.getElementById('progress');
  const url = bar?.dataset.events;
  if (!url) return;
  const source = new EventSource(url);
  const show = (job) => {
    bar.value = job.done;
    bar.max = job.total;
    for (const key of ['done', 'applied', 'escalated']) {
      const el = document.getElementById(key);
      if (el) el.textContent = String(job[key]);
    }
    const status = document.getElementById('job-status');
    if (status) status.textContent = job.status;
  };
  source.addEventListener('progress', (e) => show(JSON.parse(e.data)));
  source.addEventListener('end', (e) => {
    source.close();
    show(JSON.parse(e.data));
    location.reload();
  });
  source.onerror = () => { source.close(); setTimeout(() => location.reload(), 2000); };
});
