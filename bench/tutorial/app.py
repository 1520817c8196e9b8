# A faithful rebuild of the tutorial's Flask app ("Build a Python Flask Google OAuth2 Login and Logout System With
# Sessions and MySQL in Browser"), used only as the baseline of scripts/bench. Kept as the tutorial wrote it; the
# only changes (marked "bench:") let it run against the local development provider and a per-run database.
from flask import Flask, redirect, url_for, session, request, jsonify, render_template
from flask_session import Session
from flask_mysqldb import MySQL
import json
import requests
from oauthlib.oauth2 import WebApplicationClient
import os

os.environ['OAUTHLIB_INSECURE_TRANSPORT'] = '1'

# bench: the tutorial pastes its Google credentials here and uses Google's discovery URL; the benchmark passes the
# development provider's instead.
GOOGLE_CLIENT_ID = os.environ["TUTORIAL_CLIENT_ID"]
GOOGLE_CLIENT_SECRET = os.environ["TUTORIAL_CLIENT_SECRET"]
GOOGLE_DISCOVERY_URL = os.environ["TUTORIAL_ISSUER"].rstrip("/") + "/.well-known/openid-configuration"

app = Flask(__name__)
app.secret_key = os.urandom(24)

# Session configuration
app.config['SESSION_TYPE'] = 'filesystem'
app.config['SESSION_PERMANENT'] = False
Session(app)

# MySQL configuration
# bench: the tutorial has 'localhost', 'root', '' and 'flask_login'; the benchmark uses 127.0.0.1 over TCP and a
# database of its own per run.
app.config['MYSQL_HOST'] = os.environ.get("TUTORIAL_MYSQL_HOST", "127.0.0.1")
app.config['MYSQL_PORT'] = int(os.environ.get("TUTORIAL_MYSQL_PORT", "3306"))
app.config['MYSQL_USER'] = 'root'
app.config['MYSQL_PASSWORD'] = ''
app.config['MYSQL_DB'] = os.environ.get("TUTORIAL_MYSQL_DB", "flask_login")
mysql = MySQL(app)

# OAuth2 client setup
client = WebApplicationClient(GOOGLE_CLIENT_ID)


def get_google_provider_cfg():
    return requests.get(GOOGLE_DISCOVERY_URL).json()


@app.route('/')
def index():
    if 'user' in session:
        return render_template('profile.html', user=session['user'])
    else:
        return render_template('login.html')


@app.route('/login')
def login():
    google_provider_cfg = get_google_provider_cfg()
    authorization_endpoint = google_provider_cfg["authorization_endpoint"]

    request_uri = client.prepare_request_uri(
        authorization_endpoint,
        redirect_uri=request.base_url + "/callback",
        scope=["openid", "email", "profile"],
    )
    return redirect(request_uri)


@app.route('/login/callback')
def callback():
    code = request.args.get("code")

    google_provider_cfg = get_google_provider_cfg()
    token_endpoint = google_provider_cfg["token_endpoint"]

    token_url, headers, body = client.prepare_token_request(
        token_endpoint,
        authorization_response=request.url,
        redirect_url=request.base_url,
        code=code
    )
    token_response = requests.post(
        token_url,
        headers=headers,
        data=body,
        auth=(GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET),
    )

    client.parse_request_body_response(json.dumps(token_response.json()))

    userinfo_endpoint = google_provider_cfg["userinfo_endpoint"]
    uri, headers, body = client.add_token(userinfo_endpoint)
    userinfo_response = requests.get(uri, headers=headers, data=body)

    if userinfo_response.json().get("email_verified"):
        unique_id = userinfo_response.json()["sub"]
        users_email = userinfo_response.json()["email"]
        picture = userinfo_response.json()["picture"]
        users_name = userinfo_response.json()["given_name"]

        session['user'] = {
            'id': unique_id,
            'email': users_email,
            'name': users_name,
            'picture': picture
        }

        cur = mysql.connection.cursor()
        cur.execute(
            "REPLACE INTO users (id, email, name, profile_pic) VALUES (%s, %s, %s, %s)",
            (unique_id, users_email, users_name, picture)
        )
        mysql.connection.commit()
        cur.close()

        return redirect(url_for('index'))
    else:
        return "User email not available or not verified by Google.", 400


@app.route('/logout')
def logout():
    session.pop('user', None)
    return redirect(url_for('index'))


if __name__ == '__main__':
    # bench: the tutorial runs on port 3000, which is our app's; scripts/bench serves this module with gunicorn.
    app.run(debug=True, port=int(os.environ.get("TUTORIAL_PORT", "3000")))
