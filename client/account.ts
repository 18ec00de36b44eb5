// The account screens' entry (/account): the Preact app in client/account-app.tsx, in the chat page's design.
import { mount } from "./account-app.tsx";

mount(document.getElementById("app") as HTMLElement);
