// The submission page follows its submission without reloading: it polls
// /s/ID/status (same origin, the page's own cookie) and puts the status, the scorer and
// the result part (HTML rendered by the server from the page's own template, user strings
// escaped there) in place, until the server says nothing more will change; a few polls more
// at most once the submission is final (its statistics come just after its scores).
// Without scripts the page's <noscript> refresh does the same by reloading.
(function () {
  "use strict";
  var status = document.getElementById("status");
  var result = document.getElementById("result");
  if (!status || !result || !status.dataset.poll) {
    return;
  }
  var url = status.dataset.poll;
  var afterFinal = parseInt(status.dataset.pollsAfterFinal || "30", 10);
  var delay = 1000;
  var failures = 0;

  function stop() {
    var note = document.getElementById("live-note");
    if (note) {
      note.remove();
    }
  }

  function show(state) {
    status.textContent = state.status;
    result.innerHTML = state.html;
    var scorer = document.getElementById("scorer");
    if (scorer) {
      scorer.textContent = state.scorer;
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store",
                 headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (state) {
        failures = 0;
        show(state);
        if (state.settled || (state.final && --afterFinal < 0)) {
          stop();
          return;
        }
        delay = Math.min(delay * 1.25, 5000);
        setTimeout(poll, delay);
      })
      .catch(function () {
        // A server restarting, a network hiccup: try again a little later, not for ever.
        if (++failures < 60) {
          setTimeout(poll, 5000);
        } else {
          stop();
        }
      });
  }

  setTimeout(poll, delay);
})();
