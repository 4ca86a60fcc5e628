// The chat page follows a streamed answer: while the reader is at the bottom, new text keeps the page scrolled to
// it; scrolling up pauses that and shows a "Jump to latest" button, which brings the reader back (and resumes
// following).
// Sending a message resumes following too. Runs in the browser only: nothing goes to the server for it.
(() => {
  const SLACK = 48; // px from the bottom that still count as "at the bottom"
  let following = true;
  let button = null;
  let placedAt = 0; // scrollY after the page last scrolled itself to the bottom

  const atBottom = () => window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - SLACK;
  function bottom() {
    window.scrollTo({ top: document.documentElement.scrollHeight });
    placedAt = window.scrollY;
  }

  function jumpButton() {
    if (button) return button;
    button = document.createElement("button");
    button.type = "button";
    button.className = "chat-jump";
    button.id = "jump-latest";
    button.textContent = "Jump to latest ↓";
    button.hidden = true;
    button.addEventListener("click", follow);
    document.body.appendChild(button);
    return button;
  }

  function follow() {
    following = true;
    jumpButton().hidden = true;
    bottom();
  }

  function place() {
    const composer = document.querySelector(".chat-composer");
    jumpButton().style.bottom = `${(composer ? composer.offsetHeight : 0) + 16}px`;
  }

  function watch(messages) {
    new MutationObserver(() => {
      place();
      // The reader may have scrolled up since the page last placed itself, with the scroll event not yet
      // delivered (it comes with the next frame, new text can come first): that is not "following" any more.
      if (window.scrollY < placedAt - SLACK && !atBottom()) following = false;
      if (following) bottom();
      else jumpButton().hidden = false;
    }).observe(messages, { childList: true, subtree: true, characterData: true });
    window.addEventListener("scroll", () => {
      following = atBottom();
      jumpButton().hidden = following; // away from the latest text: offer the way back
    }, { passive: true });
    window.addEventListener("resize", place);
    document.addEventListener("click", (event) => {
      if (event.target.closest && event.target.closest("#send")) follow();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && event.target.closest && event.target.closest("#prompt")) follow();
    });
    place();
    bottom();
  }

  // Vue mounts the page's elements after this script runs, sooner or later depending on the machine's load.
  const found = document.getElementById("messages");
  if (found) watch(found);
  else {
    const mounting = new MutationObserver(() => {
      const messages = document.getElementById("messages");
      if (!messages) return;
      mounting.disconnect();
      watch(messages);
    });
    mounting.observe(document.documentElement, { childList: true, subtree: true });
  }
})();
